using System.Collections.Concurrent;
using System.Text.Json;
using LlmServer.ReplicaProtocol;
using LlmServer.Router.Configuration;
using Microsoft.Extensions.Options;

namespace LlmServer.Router.Replicas;

/// <summary>
/// Reads each replica's load (running and waiting requests, from <c>/health/ready</c>) every
/// <see cref="RouterOptions.LoadPollInterval"/>, and counts the requests the router sent it since: the load a
/// routing decision sees is the last reading plus those. It also knows which replicas drain: marked when one refuses
/// a request as draining (<see cref="MarkDraining"/>) or its readiness says so, until a reading begun after the mark
/// says otherwise. Each reading also names the replica's sessions store (<see cref="SessionStoreIds"/>): replicas that
/// name one store share their sessions, and the last name read is kept while a replica is away.
/// </summary>
internal sealed partial class ReplicaLoadMonitor(
    IOptionsMonitor<RouterOptions> options,
    IHttpClientFactory httpClients,
    TimeProvider time,
    ILogger<ReplicaLoadMonitor> logger) : BackgroundService
{
    public const string HttpClientName = "replica-load";

    /// <summary>The reason a draining replica's readiness gives.</summary>
    private const string DrainingReason = "draining";

    private readonly ConcurrentDictionary<string, ReplicaLoad> _loads = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The replica's load as the router sees it now.</summary>
    public int LoadOf(string destinationId) => _loads.TryGetValue(destinationId, out var load) ? load.Current : 0;

    /// <summary>The sessions store the replica last reported; null before its first reading.</summary>
    public string? StoreOf(string destinationId) => _loads.TryGetValue(destinationId, out var load) ? load.Store : null;

    /// <summary>True when some replica reported <paramref name="storeId"/> (it may be away now).</summary>
    public bool IsKnownStore(string storeId) => _loads.Values.Any(l => l.Store == storeId);

    /// <summary>
    /// True once every configured replica has told its sessions store, or answered ready without one: until then a
    /// store no replica named may be one not heard of yet, and a list of the stores heard of may be incomplete.
    /// </summary>
    public bool AllReported => options.CurrentValue.Replicas.Select(ReplicaProxyConfigProvider.DestinationId)
        .All(r => _loads.TryGetValue(r, out var load) && load.Reported);

    /// <summary>The stores the replicas reported and, for each, the replicas that reported it.</summary>
    public ILookup<string, string> ReplicasByStore() =>
        _loads.Where(l => l.Value.Store is not null).ToLookup(l => l.Value.Store!, l => l.Key, StringComparer.Ordinal);

    /// <summary>True when the replicas do not all share one sessions store (each SQLite replica has its own).</summary>
    public bool StoresSplit => _loads.Values.Select(l => l.Store).OfType<string>().Distinct(StringComparer.Ordinal).Skip(1).Any();

    /// <summary>Counts a request the router just sent to the replica, until the next reading includes it.</summary>
    public void Sent(string destinationId) => Of(destinationId).AddSent();

    /// <summary>True while the replica drains: it takes no new requests, so none is routed there.</summary>
    public bool IsDraining(string destinationId) => _loads.TryGetValue(destinationId, out var load) && load.Draining;

    /// <summary>Marks the replica draining now (it refused a request as draining).</summary>
    public void MarkDraining(string destinationId)
    {
        if (Of(destinationId).MarkDraining(time.GetTimestamp()))
        {
            LogDraining(logger, destinationId);
        }
    }

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
            var started = time.GetTimestamp();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.CurrentValue.HealthCheckTimeout);
            using var client = httpClients.CreateClient(HttpClientName);
            using var response = await client.GetAsync(new Uri(replica + ReplicaProxyConfigProvider.ReadyPath), timeout.Token);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(timeout.Token));
            var running = body.RootElement.TryGetProperty("running", out var r) && r.TryGetInt32(out var rv) ? rv : 0;
            var waiting = body.RootElement.TryGetProperty("waiting", out var w) && w.TryGetInt32(out var wv) ? wv : 0;
            var draining = body.RootElement.TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String && reason.GetString() == DrainingReason;
            var load = Of(replica);
            load.Read(running + waiting);
            if (body.RootElement.TryGetProperty(SessionStoreIds.ReadinessField, out var store) && store.ValueKind == JsonValueKind.String &&
                SessionStoreIds.IsStoreId(store.GetString()))
            {
                load.Store = store.GetString();
                load.Reported = true;
            }
            else if (response.IsSuccessStatusCode)
            {
                // Ready without a store: it keeps no sessions of its own to route by.
                load.Reported = true;
            }

            if (draining)
            {
                MarkDraining(replica);
            }
            else
            {
                load.ClearDrainingMarkedBefore(started);
            }
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException && !cancellationToken.IsCancellationRequested)
        {
            // Health checks take an unreachable replica out; what it ran when it went away is gone with it.
            LogPollFailed(logger, replica, e.Message);
            Of(replica).Read(0);
        }
    }

    private ReplicaLoad Of(string destinationId) => _loads.GetOrAdd(destinationId, _ => new ReplicaLoad());

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "Reading the load of replica {Replica} failed: {Reason}")]
    private static partial void LogPollFailed(ILogger logger, string replica, string reason);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Replica {Replica} drains: no new requests go there until its readiness says otherwise")]
    private static partial void LogDraining(ILogger logger, string replica);

    private sealed class ReplicaLoad
    {
        private int _reported;
        private int _sentSinceReading;
        private string? _store;
        private bool _everReported;

        // When the replica was marked draining (a timestamp), 0 when it is not.
        private long _drainingSince;

        public string? Store
        {
            get => Volatile.Read(ref _store);
            set => Volatile.Write(ref _store, value);
        }

        /// <summary>True once a reading told the store (or that there is none); never reset.</summary>
        public bool Reported
        {
            get => Volatile.Read(ref _everReported);
            set => Volatile.Write(ref _everReported, value);
        }

        public int Current => Volatile.Read(ref _reported) + Volatile.Read(ref _sentSinceReading);

        public bool Draining => Volatile.Read(ref _drainingSince) != 0;

        /// <summary>True when this marked it (it was not marked already).</summary>
        public bool MarkDraining(long now) => Interlocked.CompareExchange(ref _drainingSince, Math.Max(1, now), 0) == 0;

        /// <summary>A reading that began before the mark may predate the drain, so only a later one clears it.</summary>
        public void ClearDrainingMarkedBefore(long readingStarted)
        {
            var since = Volatile.Read(ref _drainingSince);
            if (since != 0 && since < readingStarted)
            {
                Interlocked.CompareExchange(ref _drainingSince, 0, since);
            }
        }

        public void AddSent() => Interlocked.Increment(ref _sentSinceReading);

        public void Read(int load)
        {
            Volatile.Write(ref _reported, load);
            Volatile.Write(ref _sentSinceReading, 0);
        }
    }
}
