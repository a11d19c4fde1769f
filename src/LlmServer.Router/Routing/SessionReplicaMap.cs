namespace LlmServer.Router.Routing;

/// <summary>
/// Which replica each session last ran on, learned from the responses the router passes back (the
/// <c>Location</c> of a created session, every proxied session call), least recently used forgotten first.
/// A forgotten or unknown session falls back to the consistent hash of its id.
/// </summary>
internal sealed class SessionReplicaMap(int capacity)
{
    private readonly Dictionary<string, LinkedListNode<(string Session, string Replica)>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Session, string Replica)> _recency = new();
    private readonly Lock _lock = new();

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    public void Remember(string sessionId, string replica)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(sessionId, out var node))
            {
                _recency.Remove(node);
            }
            else if (_entries.Count >= capacity && _recency.Last is { } oldest)
            {
                _recency.RemoveLast();
                _entries.Remove(oldest.Value.Session);
            }

            _entries[sessionId] = _recency.AddFirst((sessionId, replica));
        }
    }

    public string? Find(string sessionId)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(sessionId, out var node))
            {
                return null;
            }

            _recency.Remove(node);
            _recency.AddFirst(node);
            return node.Value.Replica;
        }
    }
}
