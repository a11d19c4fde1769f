using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Operations.Lifecycle;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

public sealed partial class HealthTests
{
    private const int WriteOnlyNonBlocking = 0x1 | 0x800; // O_WRONLY | O_NONBLOCK (Linux)

    [Fact]
    public async Task Ready_is_503_while_the_model_loads_and_live_is_200()
    {
        // The model path is a FIFO: loading blocks on it until the test lets it go, so "loading" lasts exactly as long as the test needs.
        var folder = Directory.CreateTempSubdirectory("llmserver-fifo-");
        var fifo = Path.Combine(folder.FullName, "blocked.gguf");
        Assert.Equal(0, MakeFifo(fifo, Convert.ToUInt32("600", 8)));
        var server = await TestServer.StartAsync(fifo, waitUntilReady: false);
        try
        {
            var (readyStatus, ready) = await GetJsonAsync(server, "/health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, readyStatus);
            Assert.Equal("loading", ready.GetProperty("state").GetString());
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await GetJsonAsync(server, "/health")).Status);
            Assert.Equal(HttpStatusCode.OK, (await GetJsonAsync(server, "/health/live")).Status);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await GetJsonAsync(server, "/props")).Status);
            Assert.Equal(EngineState.Loading, server.Services.GetRequiredService<ITextGenerator>().State);
        }
        finally
        {
            await ReleaseLoaderAsync(server, fifo);
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_drain_while_the_model_loads_keeps_the_engine_from_turning_ready()
    {
        var folder = Directory.CreateTempSubdirectory("llmserver-fifo-");
        var fifo = Path.Combine(folder.FullName, "blocked.gguf");
        Assert.Equal(0, MakeFifo(fifo, Convert.ToUInt32("600", 8)));
        var server = await TestServer.StartAsync(fifo, waitUntilReady: false);
        try
        {
            var generator = server.Services.GetRequiredService<ITextGenerator>();
            Assert.Equal(EngineState.Loading, generator.State);
            await generator.DrainAsync(TimeSpan.Zero);

            Assert.Equal(EngineState.Draining, generator.State);
            var refusal = Assert.Throws<GenerationException>(() => generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 4 }));
            Assert.Equal(GenerationErrorCode.Unavailable, refusal.Code);
            var (status, body) = await GetJsonAsync(server, "/health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Equal("draining", body.GetProperty("reason").GetString());
        }
        finally
        {
            await ReleaseLoaderAsync(server, fifo);
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Ready_is_503_while_draining_and_running_generations_finish()
    {
        // The gate holds the generation past its first tokens, so it is certainly running when the drain begins
        // (unheld, stories260K can write all 40 tokens first) and the drain cannot end before the checks below.
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(extraArgs: ["--Server:DrainSeconds=120"], configureServices: gate.Install);
        Assert.Equal(HttpStatusCode.OK, (await GetJsonAsync(server, "/health/ready")).Status);

        var generator = server.Services.GetRequiredService<ITextGenerator>();
        gate.CloseAfter(4);
        try
        {
            await using var stream = generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 40, IgnoreEos = true });
            await gate.Blocked;
            var drain = server.Services.GetRequiredService<GracefulShutdown>().BeginDrain();

            var (status, body) = await GetJsonAsync(server, "/health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Equal("draining", body.GetProperty("reason").GetString());
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await GetJsonAsync(server, "/health")).Status);
            Assert.Equal(HttpStatusCode.OK, (await GetJsonAsync(server, "/health/live")).Status);

            using var refused = await server.Client.GetAsync(new Uri("/props", UriKind.Relative));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
            using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("server_shutting_down", error.RootElement.GetProperty("error").GetProperty("code").GetString());

            var exception = Assert.Throws<GenerationException>(() => generator.Submit(new GenerationRequest { Prompt = "Late", MaxTokens = 2 }));
            Assert.Equal(GenerationErrorCode.Unavailable, exception.Code);
            Assert.False(drain.IsCompleted);

            // The generation admitted before the drain runs to its end instead of being cut off.
            gate.Open();
            var result = await stream.CollectAsync();
            Assert.Equal(FinishReason.Length, result.Choices[0].Completion.FinishReason);
            Assert.Equal(40, result.Choices[0].Completion.Usage.CompletionTokens);
            await drain;
        }
        finally
        {
            gate.Open();
        }
    }

    [Fact]
    public async Task Requests_waiting_for_the_first_step_of_a_fresh_server_are_not_a_stall()
    {
        // As a restarted batch does: work arrives before any decode step has ever ended.
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(configureServices: gate.Install);
        var generator = server.Services.GetRequiredService<ITextGenerator>();
        Assert.Null(generator.GetStatus().LastDecodeAt);
        gate.Close();
        try
        {
            await using var stream = generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 4 });
            await gate.Blocked;

            var (status, body) = await GetJsonAsync(server, "/health/ready");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(1, body.GetProperty("running").GetInt32() + body.GetProperty("waiting").GetInt32());
        }
        finally
        {
            gate.Open();
        }
    }

    [Fact]
    public async Task A_decode_held_past_the_stall_limit_makes_the_server_unready_until_it_ends()
    {
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(extraArgs: ["--Health:DecodeStallSeconds=1"], configureServices: gate.Install);
        var generator = server.Services.GetRequiredService<ITextGenerator>();
        gate.Close();
        try
        {
            await using var stream = generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 4 });
            await gate.Blocked;

            // A stall is a span of time, so this polls for it; the gate holds the decode for as long as that takes.
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var (status, body) = await GetJsonAsync(server, "/health/ready");
            while (status == HttpStatusCode.OK)
            {
                await Task.Delay(100, deadline.Token);
                (status, body) = await GetJsonAsync(server, "/health/ready");
            }

            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Equal("no decode step completed in the last 1 s with requests in flight", body.GetProperty("reason").GetString());

            gate.Open();
            await stream.CollectAsync();
            Assert.Equal(HttpStatusCode.OK, (await GetJsonAsync(server, "/health/ready")).Status);
        }
        finally
        {
            gate.Open();
        }
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> GetJsonAsync(TestServer server, string path)
    {
        using var response = await server.Client.GetAsync(new Uri(path, UriKind.Relative));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, json.RootElement.Clone());
    }

    /// <summary>Gives the loader empty reads (end of file) until it gives up, so the engine stops cleanly.</summary>
    private static async Task ReleaseLoaderAsync(TestServer server, string fifo)
    {
        var generator = server.Services.GetRequiredService<ITextGenerator>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (generator.State is EngineState.Loading or EngineState.Draining && DateTime.UtcNow < deadline)
        {
            var fd = Open(fifo, WriteOnlyNonBlocking);
            if (fd >= 0)
            {
                _ = Close(fd);
            }

            // The loader blocks in native code on the fifo and raises no event per read: each open ends one read, so this repeats.
            await Task.Delay(20);
        }

        await server.DisposeAsync();
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MakeFifo(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
