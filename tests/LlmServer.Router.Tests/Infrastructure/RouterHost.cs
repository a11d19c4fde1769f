using System.Text.Json;
using LlmServer.Router.Hosting;
using LlmServer.Testing;
using Microsoft.AspNetCore.Builder;

namespace LlmServer.Router.Tests.Infrastructure;

/// <summary>The router in-process on a loopback port it takes itself, in front of the given replica addresses.</summary>
internal sealed class RouterHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private RouterHost(WebApplication app, string[] replicas)
    {
        _app = app;
        Replicas = replicas;
        Address = ListeningAddress(app);
        Client = new HttpClient { BaseAddress = new Uri(Address), Timeout = TimeSpan.FromSeconds(180) };
    }

    public string Address { get; }

    public HttpClient Client { get; }

    public IReadOnlyList<string> Replicas { get; }

    public static Task<RouterHost> StartAsync(params string[] replicas) => StartAsync([], replicas);

    /// <summary>Starts the router with <paramref name="settings"/> (command-line style) over the defaults.</summary>
    public static Task<RouterHost> StartAsync(IEnumerable<string> settings, params string[] replicas) => StartAsync(settings, null, replicas);

    /// <summary>Starts the router with <paramref name="settings"/> over the defaults, its builder given to <paramref name="configure"/>.</summary>
    public static async Task<RouterHost> StartAsync(IEnumerable<string> settings, Action<WebApplicationBuilder>? configure, params string[] replicas)
    {
        var args = new List<string> { "--urls", ServerProcess.AnyLoopbackPort, "--Router:HealthCheckInterval=00:00:00.500", "--Router:HealthCheckTimeout=00:00:10", "--Router:LoadPollInterval=00:00:00.250", "--Logging:LogLevel:Default=Warning",
            // A starved test run must not turn a listing into a timeout; the deadline's own test sets a short one.
            "--Router:SessionListTimeout=00:05:00" };
        args.AddRange(settings);
        args.AddRange(replicas.Select((r, i) => $"--Router:Replicas:{i}={r}"));
        var app = RouterApplication.Build([.. args], configure);
        await app.StartAsync();
        return new RouterHost(app, replicas);
    }

    /// <summary>Where a started host, given a port 0 address, listens: the port its server took.</summary>
    public static string ListeningAddress(WebApplication app) => app.Urls.Single();

    /// <summary>Waits until the router's health view says each named replica is in the wanted state.</summary>
    public async Task WaitForHealthAsync(string replicaAddress, string health)
    {
        var name = RouterApplication.ReplicaName(replicaAddress);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            using var response = await Client.GetAsync(new Uri("/router/health", UriKind.Relative), deadline.Token);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(deadline.Token));
            if (body.RootElement.GetProperty("replicas").EnumerateArray().Any(r => r.GetProperty("name").GetString() == name && r.GetProperty("health").GetString() == health))
            {
                return;
            }

            // The router learns replica health from its own periodic probes and pushes no change: its view is polled.
            await Task.Delay(50, deadline.Token);
        }
    }

    /// <summary>
    /// Waits until the router has read the sessions store of each replica (what it routes sessions by) and returns
    /// them in the order of <paramref name="replicaAddresses"/>.
    /// </summary>
    public async Task<string[]> WaitForStoresAsync(params string[] replicaAddresses)
    {
        var names = replicaAddresses.Select(RouterApplication.ReplicaName).ToArray();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            using var response = await Client.GetAsync(new Uri("/router/health", UriKind.Relative), deadline.Token);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(deadline.Token));
            var stores = body.RootElement.GetProperty("replicas").EnumerateArray()
                .Where(r => r.GetProperty("sessionStore").ValueKind == JsonValueKind.String)
                .ToDictionary(r => r.GetProperty("name").GetString()!, r => r.GetProperty("sessionStore").GetString()!);
            if (names.All(stores.ContainsKey))
            {
                return [.. names.Select(n => stores[n])];
            }

            // Learned from the router's periodic load readings, which push nothing: its view is polled.
            await Task.Delay(50, deadline.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
