using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Responses;

/// <summary>
/// Stored responses, in memory: at most <see cref="ResponsesOptions.MaxStored"/> (oldest dropped first), each for
/// <see cref="ResponsesOptions.StoreTtl"/>. A response is visible only to the API key that created it.
/// </summary>
internal sealed class ResponseStore(IOptions<ResponsesOptions> options, TimeProvider time)
{
    private readonly Lock _lock = new();

    /// <summary>Each response's node in <see cref="_byAge"/>, so a deleted one leaves the queue at once.</summary>
    private readonly Dictionary<string, LinkedListNode<StoredResponse>> _byId = new(StringComparer.Ordinal);
    private readonly LinkedList<StoredResponse> _byAge = new();
    private readonly ResponsesOptions _options = options.Value;

    public void Add(StoredResponse response)
    {
        if (_options.MaxStored == 0)
        {
            return;
        }

        lock (_lock)
        {
            _byId[response.Response.Id] = _byAge.AddLast(response);
            DropOld();
        }
    }

    /// <summary>The caller's stored response, or null when it is unknown, expired, deleted or someone else's.</summary>
    public StoredResponse? Get(string id, string? owner)
    {
        lock (_lock)
        {
            DropOld();
            return _byId.TryGetValue(id, out var node) && node.Value.Owner == owner ? node.Value : null;
        }
    }

    public bool Delete(string id, string? owner)
    {
        lock (_lock)
        {
            if (!_byId.TryGetValue(id, out var node) || node.Value.Owner != owner)
            {
                return false;
            }

            _byId.Remove(id);
            _byAge.Remove(node);
            return true;
        }
    }

    private void DropOld()
    {
        var oldest = time.GetUtcNow() - _options.StoreTtl;
        while (_byAge.First is { } head && (_byAge.Count > _options.MaxStored || head.Value.StoredAt < oldest))
        {
            _byAge.RemoveFirst();
            _byId.Remove(head.Value.Response.Id);
        }
    }
}

/// <summary>
/// A stored response: the object GET returns, the conversation so far (without instructions, which are not
/// carried over), and the chain key its continuations pass to the scheduler as their session key.
/// </summary>
internal sealed record StoredResponse(ResponseObject Response, IReadOnlyList<ChatTurn> Conversation, string ChainKey, string? Owner, DateTimeOffset StoredAt);
