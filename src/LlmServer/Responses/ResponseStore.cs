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
    private readonly Dictionary<string, StoredResponse> _byId = new(StringComparer.Ordinal);
    private readonly Queue<StoredResponse> _byAge = new();
    private readonly ResponsesOptions _options = options.Value;

    public void Add(StoredResponse response)
    {
        if (_options.MaxStored == 0)
        {
            return;
        }

        lock (_lock)
        {
            _byId[response.Response.Id] = response;
            _byAge.Enqueue(response);
            DropOld();
        }
    }

    /// <summary>The caller's stored response, or null when it is unknown, expired, deleted or someone else's.</summary>
    public StoredResponse? Get(string id, string? owner)
    {
        lock (_lock)
        {
            DropOld();
            return _byId.TryGetValue(id, out var stored) && stored.Owner == owner ? stored : null;
        }
    }

    public bool Delete(string id, string? owner)
    {
        lock (_lock)
        {
            return _byId.TryGetValue(id, out var stored) && stored.Owner == owner && _byId.Remove(id);
        }
    }

    private void DropOld()
    {
        var oldest = time.GetUtcNow() - _options.StoreTtl;
        while (_byAge.TryPeek(out var head) && (_byId.Count > _options.MaxStored || head.StoredAt < oldest || !_byId.ContainsKey(head.Response.Id)))
        {
            _byAge.Dequeue();
            if (_byId.TryGetValue(head.Response.Id, out var current) && ReferenceEquals(current, head))
            {
                _byId.Remove(head.Response.Id);
            }
        }
    }
}

/// <summary>
/// A stored response: the object GET returns, the conversation so far (without instructions, which are not
/// carried over), and the chain key its continuations pass to the scheduler as their session key.
/// </summary>
internal sealed record StoredResponse(ResponseObject Response, IReadOnlyList<ChatTurn> Conversation, string ChainKey, string? Owner, DateTimeOffset StoredAt);
