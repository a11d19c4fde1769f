using System.Net;
using LlmServer.Hosting;
using LlmServer.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// The real server (Kestrel on 127.0.0.1, a free port) in this process, serving a real model. Each instance is
/// its own server; pass extra configuration as command-line style arguments (<c>--Scheduler:Slots=2</c>).
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    private TestServer(WebApplication app, Uri baseAddress)
    {
        App = app;
        BaseAddress = baseAddress;
        Client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public WebApplication App { get; }

    public Uri BaseAddress { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => App.Services;

    /// <summary>Starts a server on <paramref name="modelPath"/> (default stories260K) and waits until it is ready.</summary>
    public static async Task<TestServer> StartAsync(string? modelPath = null, IEnumerable<string>? extraArgs = null, bool waitUntilReady = true)
    {
        var args = new List<string>
        {
            "--model", modelPath ?? TestModels.Stories260K,
            "--urls", "http://127.0.0.1:0",
            "--Logging:LogLevel:Default=Warning",
            "--Scheduler:Slots=4",

            // One thread each: many servers share the test machine, and idle OpenMP workers spin.
            "--Model:Threads=1",
            "--Model:BatchThreads=1",
            "--Scheduler:ContextSize=2048",
        };
        args.AddRange(extraArgs ?? []);
        var app = ServerApplication.Build([.. args]) ?? throw new InvalidOperationException("The server refused to start.");
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var server = new TestServer(app, new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)));
        if (waitUntilReady)
        {
            await server.WaitUntilReadyAsync();
        }

        return server;
    }

    public async Task WaitUntilReadyAsync(TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            using var response = await Client.GetAsync(new Uri("/health", UriKind.Relative));
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("The server did not become ready.");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>One shared server for a test class (<c>IClassFixture&lt;SharedServerFixture&gt;</c>).</summary>
public sealed class SharedServerFixture : IAsyncLifetime
{
    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
