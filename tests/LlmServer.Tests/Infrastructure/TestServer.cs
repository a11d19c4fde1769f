using System.Net;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
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
        // A guard against a hang, not a limit: on a starved 2-core CI machine a request may wait minutes for the CPU.
        Client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(5) };
    }

    public WebApplication App { get; }

    public Uri BaseAddress { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => App.Services;

    /// <summary>
    /// Starts a server on <paramref name="modelPath"/> (default stories260K) and waits until it is ready;
    /// <paramref name="configureServices"/> runs after the server's own registrations (test hooks).
    /// </summary>
    public static async Task<TestServer> StartAsync(
        string? modelPath = null,
        IEnumerable<string>? extraArgs = null,
        bool waitUntilReady = true,
        Action<IServiceCollection>? configureServices = null)
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
        var app = ServerApplication.Build([.. args], configureServices);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var server = new TestServer(app, new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)));
        if (waitUntilReady)
        {
            try
            {
                await server.WaitUntilReadyAsync();
            }
            catch
            {
                // Left running, the server would go on working (a resumed batch) and its meters would count into the
                // next server's /metrics in this process.
                await server.DisposeAsync();
                throw;
            }
        }

        return server;
    }

    /// <summary>
    /// Waits (at most <paramref name="timeout"/>, 60 s by default) for the engine's state-change event to end its
    /// loading, then checks once that <c>/health</c> answers ready.
    /// </summary>
    public async Task WaitUntilReadyAsync(TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        var generator = Services.GetRequiredService<ITextGenerator>();
        var state = generator.State;
        while (state == EngineState.Loading)
        {
            state = await generator.WaitForStateChangeAsync(state, deadline.Token);
        }

        using var response = await Client.GetAsync(new Uri("/health", UriKind.Relative), deadline.Token);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"The server is not ready (engine {state}): {await response.Content.ReadAsStringAsync(deadline.Token)}");
        }
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
