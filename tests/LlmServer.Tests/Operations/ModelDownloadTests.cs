using System.Collections.Concurrent;
using System.Security.Cryptography;
using LlmServer.Hosting;
using LlmServer.Operations.ModelDownload;
using LlmServer.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmServer.Tests.Operations;

/// <summary>The first-run download against a model host on 127.0.0.1 that serves a real GGUF (with Range support) and can fail on cue.</summary>
public sealed class ModelDownloadTests : IAsyncLifetime
{
    private readonly byte[] _fixture = File.ReadAllBytes(TestModels.Stories260K);
    private readonly ConcurrentQueue<string> _requests = new();
    private readonly DirectoryInfo _models = Directory.CreateTempSubdirectory("llmserver-download-");
    private WebApplication? _host;
    private int _flakyRequests;

    private Uri Base { get; set; } = null!;

    private string Sha256 => Convert.ToHexStringLower(SHA256.HashData(_fixture));

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _host = builder.Build();
        _host.Use(async (context, next) =>
        {
            _requests.Enqueue($"{context.Request.Path} {context.Request.Headers.Range}".Trim());
            await next(context);
        });
        _host.MapGet("/model.gguf", () => Results.File(_fixture, "application/octet-stream", enableRangeProcessing: true));
        _host.MapGet("/flaky.gguf", async context =>
        {
            // The first response promises the whole file, sends a third of it and drops the connection.
            if (Interlocked.Increment(ref _flakyRequests) == 1)
            {
                context.Response.ContentLength = _fixture.Length;
                await context.Response.Body.WriteAsync(_fixture.AsMemory(0, _fixture.Length / 3));
                await context.Response.Body.FlushAsync();
                context.Abort();
                return;
            }

            await Results.File(_fixture, "application/octet-stream", enableRangeProcessing: true).ExecuteAsync(context);
        });
        await _host.StartAsync();
        Base = new Uri(_host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        _models.Delete(recursive: true);
    }

    [Fact]
    public async Task Downloads_verifies_the_checksum_and_renames_into_place()
    {
        var output = new StringWriter();
        var path = await DownloadAsync("/model.gguf", Sha256, output);

        Assert.Equal(Path.Combine(_models.FullName, "model.gguf"), path);
        Assert.Equal(_fixture, await File.ReadAllBytesAsync(path));
        Assert.False(File.Exists(path + ModelDownloader.PartSuffix));
        Assert.Contains("SHA-256 verified", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("100.0%", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_interrupted_download_resumes_with_a_range_request()
    {
        var path = await DownloadAsync("/flaky.gguf", Sha256, new StringWriter());

        Assert.Equal(_fixture, await File.ReadAllBytesAsync(path));
        var requests = _requests.Where(r => r.StartsWith("/flaky.gguf", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, requests.Length);
        Assert.Equal("/flaky.gguf", requests[0]);
        Assert.Matches(@"^/flaky\.gguf bytes=[1-9]\d*-$", requests[1]);
    }

    [Fact]
    public async Task A_part_file_left_by_an_earlier_run_is_resumed_not_restarted()
    {
        var part = Path.Combine(_models.FullName, "model.gguf" + ModelDownloader.PartSuffix);
        await File.WriteAllBytesAsync(part, _fixture.AsSpan(0, 1000).ToArray());

        var path = await DownloadAsync("/model.gguf", Sha256, new StringWriter());

        Assert.Equal(_fixture, await File.ReadAllBytesAsync(path));
        Assert.Equal(["/model.gguf bytes=1000-"], _requests.ToArray());
    }

    [Fact]
    public async Task A_checksum_mismatch_fails_and_leaves_no_model_behind()
    {
        var wrong = new string('0', 64);
        var exception = await Assert.ThrowsAsync<ModelDownloadException>(() => DownloadAsync("/model.gguf", wrong, new StringWriter()));

        Assert.Contains(Sha256, exception.Message, StringComparison.Ordinal);
        Assert.Contains(wrong, exception.Message, StringComparison.Ordinal);
        Assert.Empty(_models.GetFiles());
    }

    [Fact]
    public async Task The_file_is_named_by_Model_Download_FileName_else_by_the_url_which_must_name_one()
    {
        using var http = new HttpClient();
        var downloader = new ModelDownloader(http, TimeProvider.System, new StringWriter(), interactive: false);

        var exception = await Assert.ThrowsAsync<ModelDownloadException>(() => downloader.DownloadAsync(
            new ModelDownloadOptions { Url = Base.ToString(), Directory = _models.FullName }, CancellationToken.None));
        Assert.StartsWith($"Cannot tell a file name from '{Base}'; set Model:Download:FileName.", exception.Message, StringComparison.Ordinal);
        Assert.Empty(_requests);

        var path = await downloader.DownloadAsync(
            new ModelDownloadOptions { Url = new Uri(Base, "/model.gguf").ToString(), FileName = " tiny ", Directory = _models.FullName }, CancellationToken.None);
        Assert.Equal(Path.Combine(_models.FullName, "tiny.gguf"), path);
        Assert.Equal(_fixture, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public void First_run_without_a_model_downloads_into_the_models_folder()
    {
        var configuration = Configuration(new Uri(Base, "/model.gguf").ToString(), Sha256);

        Assert.True(ModelPathResolver.TryResolve(configuration, download: true, out var error), error);
        Assert.Equal(Path.Combine(_models.FullName, "model.gguf"), configuration["Model:Path"]);
        Assert.Equal(_fixture, File.ReadAllBytes(configuration["Model:Path"]!));

        // The next start finds the file and downloads nothing.
        var requests = _requests.Count;
        var again = Configuration(new Uri(Base, "/model.gguf").ToString(), Sha256);
        Assert.True(ModelPathResolver.TryResolve(again, download: true, out _));
        Assert.Equal(requests, _requests.Count);
    }

    [Fact]
    public void Offline_it_stops_with_one_message_naming_the_three_ways_to_provide_a_model()
    {
        using var offline = new ClosedPort();
        var configuration = Configuration($"{offline.Address}/model.gguf", sha256: null, attempts: 1);

        Assert.False(ModelPathResolver.TryResolve(configuration, download: true, out var error));
        Assert.Contains("--model PATH", error, StringComparison.Ordinal);
        Assert.Contains("models/", error, StringComparison.Ordinal);
        Assert.Contains("Model:Download:Url", error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error);
        Assert.Empty(_models.GetFiles("*.gguf"));
    }

    [Fact]
    public void The_progress_line_shows_bytes_percent_rate_and_time_left()
    {
        var line = DownloadProgressBar.Format(received: 150L << 20, total: 600L << 20, bytesPerSecond: 10 << 20);
        Assert.Contains(" 25.0%", line, StringComparison.Ordinal);
        Assert.Contains("150.0 MiB / 600.0 MiB", line, StringComparison.Ordinal);
        Assert.Contains("10.0 MiB/s", line, StringComparison.Ordinal);
        Assert.Contains("0:45 left", line, StringComparison.Ordinal);
    }

    private async Task<string> DownloadAsync(string path, string? sha256, TextWriter output)
    {
        using var http = new HttpClient();
        var downloader = new ModelDownloader(http, TimeProvider.System, output, interactive: false);
        return await downloader.DownloadAsync(
            new ModelDownloadOptions { Url = new Uri(Base, path).ToString(), Sha256 = sha256, Directory = _models.FullName, Attempts = 3 },
            CancellationToken.None);
    }

    private IConfiguration Configuration(string url, string? sha256, int attempts = 3) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Model:Download:Url"] = url,
            ["Model:Download:Sha256"] = sha256,
            ["Model:Download:Directory"] = _models.FullName,
            ["Model:Download:Attempts"] = attempts.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }).Build();
}
