using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Responses;

/// <summary>
/// Stored responses, in memory: at most <see cref="ResponsesOptions.MaxStored"/> (oldest dropped first), each for
/// <see cref="ResponsesOptions.StoreTtl"/> from when it is stored (a timer drops it when that ends). A response is visible only to the API
/// key that created it. A chain's KV cache (resident in a slot, or on disk once evicted) is kept only while a stored
/// response or a running generation uses the chain: when the last one goes, the engine forgets it, so no KV state
/// outlives the responses that could continue it.
/// </summary>
internal sealed class ResponseStore : IDisposable
{
    /// <summary>The longest the expiry timer is armed for at once (see <see cref="ArmExpiry"/>).</summary>
    private static readonly TimeSpan MaxTimerDue = TimeSpan.FromDays(30);

    private readonly Lock _lock = new();

    /// <summary>Each response's node in <see cref="_byAge"/>, so a deleted one leaves the queue at once.</summary>
    private readonly Dictionary<string, LinkedListNode<StoredResponse>> _byId = new(StringComparer.Ordinal);
    private readonly LinkedList<StoredResponse> _byAge = new();

    /// <summary>Stored responses and running generations per chain key.</summary>
    private readonly Dictionary<string, int> _chainUsers = new(StringComparer.Ordinal);
    private readonly ResponsesOptions _options;
    private readonly TimeProvider _time;
    private readonly ITextGenerator _generator;
    private readonly ITimer _expiry;
    private bool _disposed;

    public ResponseStore(IOptions<ResponsesOptions> options, TimeProvider time, ITextGenerator generator)
    {
        _options = options.Value;
        _time = time;
        _generator = generator;
        _expiry = time.CreateTimer(_ => Expire(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// Keeps <paramref name="chainKey"/>'s KV for a generation that will store its response in the chain, until the
    /// lease is disposed (after the response is stored, or not: a failed one).
    /// </summary>
    public ChainLease UseChain(string chainKey)
    {
        lock (_lock)
        {
            _chainUsers[chainKey] = _chainUsers.GetValueOrDefault(chainKey) + 1;
        }

        return new ChainLease(this, chainKey);
    }

    public void Add(StoredResponse response)
    {
        if (_options.MaxStored == 0)
        {
            return;
        }

        var ended = new List<string>();
        lock (_lock)
        {
            // Stamped now, not at the request's start: the queue is in order of storing, so expiry must be too.
            _byId[response.Response.Id] = _byAge.AddLast(response with { StoredAt = _time.GetUtcNow() });
            _chainUsers[response.ChainKey] = _chainUsers.GetValueOrDefault(response.ChainKey) + 1;
            DropOld(ended);
        }

        Forget(ended);
    }

    /// <summary>The caller's stored response, or null when it is unknown, expired, deleted or someone else's.</summary>
    public StoredResponse? Get(string id, string? owner)
    {
        var ended = new List<string>();
        StoredResponse? found;
        lock (_lock)
        {
            DropOld(ended);
            found = _byId.TryGetValue(id, out var node) && node.Value.Owner == owner ? node.Value : null;
        }

        Forget(ended);
        return found;
    }

    public bool Delete(string id, string? owner)
    {
        var ended = new List<string>();
        lock (_lock)
        {
            if (!_byId.TryGetValue(id, out var node) || node.Value.Owner != owner)
            {
                return false;
            }

            _byId.Remove(id);
            _byAge.Remove(node);
            Release(node.Value.ChainKey, ended);
        }

        Forget(ended);
        return true;
    }

    /// <summary>
    /// Forgets every chain's KV: at shutdown, since the stored responses, held in memory, do not outlive the
    /// process, and KV states saved for them would be files nothing can continue.
    /// </summary>
    public void ForgetAllChains()
    {
        List<string> chains;
        lock (_lock)
        {
            chains = [.. _chainUsers.Keys];
        }

        Forget(chains);
    }

    public void Dispose()
    {
        // Under the lock, so an expiry running now (or a request) never re-arms the timer once it is disposed.
        lock (_lock)
        {
            _disposed = true;
        }

        _expiry.Dispose();
    }

    private void Expire()
    {
        var ended = new List<string>();
        lock (_lock)
        {
            DropOld(ended);
        }

        Forget(ended);
    }

    private void DropOld(List<string> ended)
    {
        var oldest = _time.GetUtcNow() - _options.StoreTtl;
        while (_byAge.First is { } head && (_byAge.Count > _options.MaxStored || head.Value.StoredAt <= oldest))
        {
            _byAge.RemoveFirst();
            _byId.Remove(head.Value.Response.Id);
            Release(head.Value.ChainKey, ended);
        }

        ArmExpiry();
    }

    /// <summary>
    /// The timer fires when the oldest stored response expires (never, with none stored), or after
    /// <see cref="MaxTimerDue"/> at most: a timer takes no due time past about 49.7 days, and a firing with nothing
    /// expired yet just arms it again.
    /// </summary>
    private void ArmExpiry()
    {
        if (_disposed)
        {
            return;
        }

        _expiry.Change(
            _byAge.First is { } head ? Clamp(head.Value.StoredAt + _options.StoreTtl - _time.GetUtcNow()) : Timeout.InfiniteTimeSpan,
            Timeout.InfiniteTimeSpan);
    }

    private static TimeSpan Clamp(TimeSpan due) => due < TimeSpan.Zero ? TimeSpan.Zero : due > MaxTimerDue ? MaxTimerDue : due;

    /// <summary>One user of the chain fewer; a chain no one uses any more goes into <paramref name="ended"/>.</summary>
    private void Release(string chainKey, List<string> ended)
    {
        var users = _chainUsers[chainKey] - 1;
        if (users > 0)
        {
            _chainUsers[chainKey] = users;
            return;
        }

        _chainUsers.Remove(chainKey);
        ended.Add(chainKey);
    }

    /// <summary>Outside the lock: the engine queues the eviction for its scheduler thread (its slot, then its file).</summary>
    private void Forget(List<string> chains)
    {
        foreach (var chainKey in chains)
        {
            _generator.EvictSession(chainKey);
        }
    }

    /// <summary>A running generation's hold on its chain (see <see cref="UseChain"/>).</summary>
    internal sealed class ChainLease(ResponseStore store, string chainKey) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            var ended = new List<string>();
            lock (store._lock)
            {
                store.Release(chainKey, ended);
            }

            store.Forget(ended);
        }
    }
}

/// <summary>
/// A stored response: the object GET returns, the conversation so far (without instructions, which are not
/// carried over), and the chain key its continuations pass to the scheduler as their session key.
/// </summary>
internal sealed record StoredResponse(ResponseObject Response, IReadOnlyList<ChatTurn> Conversation, string ChainKey, string? Owner)
{
    /// <summary>When the store took it (its generation ended), which its time to live counts from; set by the store.</summary>
    public DateTimeOffset StoredAt { get; init; }
}
