using System.Collections.Concurrent;
using System.Text.Json;
using LlmServer.Router.Configuration;
using Microsoft.Extensions.Options;

namespace LlmServer.Router.Replicas;

/// <summary>
/// Reads each replica's load (running and waiting requests, from <c>/health/ready</c>) every
/// <see cref="RouterOptions.LoadPollInterval"/>, and counts the requests the router sent it since: the load a
/// routing decision sees is the last reading plus those.
/// </summary>
internal sealed partial class ReplicaLoadMonitor(
    IOptionsMonitor<RouterOptions> options,
    IHttpClientFactory httpClients,
    TimeProvider time,
    ILogger<ReplicaLoadMonitor> logger) : BackgroundService
{
    public const string HttpClientName = "replica-load";

    private readonly ConcurrentDictionary<string, ReplicaLoad> _loads = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The replica's load as the router sees it now.</summary>
    public int LoadOf(string destinationId) => _loads.TryGetValue(destinationId, out var load) ? load.Current : 0;

    /// <summary>Counts a request the router just sent to the replica, until the next reading includes it.</summary>
    public void Sent(string destinationId) => _loads.GetOrAdd(destinationId, _ => new ReplicaLoad()).AddSent();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.CurrentValue.LoadPollInterval, time);
        do
        {
            var replicas = options.CurrentValue.Replicas.Select(ReplicaProxyConfigProvider.DestinationId).ToArray();
            foreach (var stale in _loads.Keys.Except(replicas, StringComparer.OrdinalIgnoreCase))
            {
                _loads.TryRemove(stale, out _);
            }

            await Task.WhenAll(replicas.Select(r => PollAsync(r, stoppingToken)));
            timer.Period = options.CurrentValue.LoadPollInterval;
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task PollAsync(string replica, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.CurrentValue.HealthCheckTimeout);
            using var client = httpClients.CreateClient(HttpClientName);
            using var response = await client.GetAsync(new Uri(replica + ReplicaProxyConfigProvider.ReadyPath), timeout.Token);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(timeout.Token));
            var running = body.RootElement.TryGetProperty("running", out var r) && r.TryGetInt32(out var rv) ? rv : 0;
            var waiting = body.RootElement.TryGetProperty("waiting", out var w) && w.TryGetInt32(out var wv) ? wv : 0;
            _loads.GetOrAdd(replica, _ => new ReplicaLoad()).Read(running + waiting);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException && !cancellationToken.IsCancellationRequested)
        {
            // Health checks take an unreachable replica out; what it ran when it went away is gone with it.
            LogPollFailed(logger, replica, e.Message);
            _loads.GetOrAdd(replica, _ => new ReplicaLoad()).Read(0);
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Reading the load of replica {Replica} failed: {Reason}")]
    private static partial void LogPollFailed(ILogger logger, string replica, string reason);

    private sealed class ReplicaLoad
    {
        private int _reported;
        private int _sentSinceReading;

        public int Current => Volatile.Read(ref _reported) + Volatile.Read(ref _sentSinceReading);

        public void AddSent() => Interlocked.Increment(ref _sentSinceReading);

        public void Read(int load)
        {
            Volatile.Write(ref _reported, load);
            Volatile.Write(ref _sentSinceReading, 0);
        }
    }
}
