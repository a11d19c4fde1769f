using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using LlmServer.Engine.Text;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The KV-cache slots of the context: the tokens each holds, the request running in each, and the session that stays
/// resident in each between its requests (with the text its KV stands for). Owned by the scheduler thread, except
/// <see cref="TryGetResidentText"/>, which front ends call from any thread to tokenize a session's next prompt.
/// </summary>
internal sealed partial class SlotTable
{
    private const int MaxTokenBytes = 256;

    private readonly IInferenceBackend _backend;
    private readonly ILogger _logger;
    private readonly KvSlot[] _slots;
    private readonly ConcurrentDictionary<string, ResidentText> _residentTexts = new(StringComparer.Ordinal);

    public SlotTable(IInferenceBackend backend, ILogger logger)
    {
        _backend = backend;
        _logger = logger;
        _slots = new KvSlot[backend.SlotCount];
        for (var i = 0; i < _slots.Length; i++)
        {
            _slots[i] = new KvSlot(i);
        }
    }

    public int Count => _slots.Length;

    public KvSlot this[int slot] => _slots[slot];

    public int FreeCount
    {
        get
        {
            var free = 0;
            foreach (var slot in _slots)
            {
                if (!slot.IsBusy)
                {
                    free++;
                }
            }

            return free;
        }
    }

    /// <summary>KV cells in use over all slots.</summary>
    public int KvTokensUsed
    {
        get
        {
            var used = 0;
            foreach (var slot in _slots)
            {
                used += slot.Tokens.Count;
            }

            return used;
        }
    }

    /// <summary>Idle slots holding a session's conversation.</summary>
    public int ResidentSessions
    {
        get
        {
            var resident = 0;
            foreach (var slot in _slots)
            {
                if (slot.SessionKey is not null && !slot.IsBusy)
                {
                    resident++;
                }
            }

            return resident;
        }
    }

    public static int CommonPrefix(List<int> cached, int[] prompt)
    {
        var max = Math.Min(cached.Count, prompt.Length);
        var i = 0;
        while (i < max && cached[i] == prompt[i])
        {
            i++;
        }

        return i;
    }

    /// <summary>The text and tokens a session's last request left in the KV cache (it may have been evicted since).</summary>
    public bool TryGetResidentText(string sessionKey, [NotNullWhen(true)] out ResidentText? resident) =>
        _residentTexts.TryGetValue(sessionKey, out resident);

    /// <summary>
    /// Gives each choice of an admitted request a free slot. Choice 0 takes the session's own slot if it is resident,
    /// else the free slot sharing the longest prefix with the prompt, and keeps what it can of that slot's KV.
    /// Returns the prompt tokens whose KV is reused.
    /// </summary>
    public int Claim(ScheduledRequest request, bool prefixReuse)
    {
        var first = Choose(request);
        Assign(first, request, request.Choices[0]);
        var reused = KeepPrefix(first, request, prefixReuse);
        for (var i = 1; i < request.Choices.Length; i++)
        {
            Assign(Choose(null), request, request.Choices[i]);
        }

        return reused;
    }

    /// <summary>Extra choices start from a copy of the prompt's KV in choice 0's slot instead of a second prefill.</summary>
    public void ForkPrompt(ScheduledRequest request)
    {
        var source = _slots[request.Choices[0].Slot];
        for (var i = 1; i < request.Choices.Length; i++)
        {
            var target = _slots[request.Choices[i].Slot];
            _backend.CopySlot(source.Id, target.Id);
            target.Tokens.Clear();
            target.Tokens.AddRange(source.Tokens);
        }
    }

    /// <summary>Frees a finished request's slots; choice 0's slot keeps its session resident for the next turn.</summary>
    public void Release(ScheduledRequest request, long now)
    {
        foreach (var choice in request.Choices)
        {
            if (Unassign(choice) is not { } slot)
            {
                continue;
            }

            slot.LastUsedAt = now;
            if (choice.Index == 0 && request.Request.SessionKey is { } key)
            {
                foreach (var other in _slots)
                {
                    if (other.SessionKey == key)
                    {
                        other.SessionKey = null;
                    }
                }

                slot.SessionKey = key;
                RememberResidentText(key, request, slot);
            }
        }
    }

    /// <summary>Takes a request's slots back and empties them (the request will run again from its first token).</summary>
    public void Vacate(ScheduledRequest request)
    {
        foreach (var choice in request.Choices)
        {
            if (Unassign(choice) is { } slot)
            {
                Clear(slot);
                choice.Slot = -1;
            }
        }
    }

    /// <summary>
    /// Takes a preempted request's slots back. Their KV stays, as a cached prefix for whoever takes them next: the
    /// request itself if it comes back before another takes them.
    /// </summary>
    public void Yield(ScheduledRequest request, long now)
    {
        foreach (var choice in request.Choices)
        {
            if (Unassign(choice) is { } slot)
            {
                slot.LastUsedAt = now;
                choice.Slot = -1;
            }
        }
    }

    /// <summary>Empties a slot whose KV is in an unknown state (after a failed decode).</summary>
    public void Reset(KvSlot slot)
    {
        Clear(slot);
        slot.SessionKey = null;
    }

    /// <summary>Forgets a session: its text, and its KV if its slot is idle.</summary>
    public void EvictSession(string key)
    {
        _residentTexts.TryRemove(key, out _);
        foreach (var slot in _slots)
        {
            if (slot.SessionKey == key && !slot.IsBusy)
            {
                slot.SessionKey = null;
                Clear(slot);
            }
        }
    }

    private void Clear(KvSlot slot)
    {
        _backend.TruncateSlot(slot.Id, 0);
        slot.Tokens.Clear();
    }

    private KvSlot? Unassign(ChoiceState choice)
    {
        if (choice.Slot < 0)
        {
            return null;
        }

        var slot = _slots[choice.Slot];
        slot.Owner = null;
        slot.Choice = null;
        return slot;
    }

    private static void Assign(KvSlot slot, ScheduledRequest request, ChoiceState choice)
    {
        slot.Owner = request;
        slot.Choice = choice;
        choice.Slot = slot.Id;
    }

    /// <summary>
    /// The session's own slot if it is resident; else the free slot sharing the longest prefix with the prompt
    /// (least recently used on ties); else the least recently used idle session, which is evicted.
    /// </summary>
    private KvSlot Choose(ScheduledRequest? request)
    {
        var key = request?.Request.SessionKey;
        if (key is not null)
        {
            foreach (var slot in _slots)
            {
                if (slot.SessionKey == key && !slot.IsBusy)
                {
                    return slot;
                }
            }
        }

        KvSlot? best = null;
        var bestPrefix = -1;
        foreach (var slot in _slots)
        {
            if (slot.IsBusy || slot.SessionKey is not null)
            {
                continue;
            }

            var prefix = request is null ? 0 : CommonPrefix(slot.Tokens, request.Prefill);
            if (prefix > bestPrefix || (prefix == bestPrefix && slot.LastUsedAt < best!.LastUsedAt))
            {
                best = slot;
                bestPrefix = prefix;
            }
        }

        if (best is not null)
        {
            return best;
        }

        foreach (var slot in _slots)
        {
            if (!slot.IsBusy && (best is null || slot.LastUsedAt < best.LastUsedAt))
            {
                best = slot;
            }
        }

        LogSessionEvicted(_logger, best!.SessionKey!, best.Id);
        _residentTexts.TryRemove(best.SessionKey!, out _);
        best.SessionKey = null;
        return best;
    }

    private int KeepPrefix(KvSlot slot, ScheduledRequest request, bool prefixReuse)
    {
        // At least the last prompt token is decoded again: its logits give the first generated token.
        var reuse = prefixReuse ? Math.Min(CommonPrefix(slot.Tokens, request.Prefill), request.Prefill.Length - 1) : 0;
        if (slot.SessionKey is not null && slot.SessionKey != request.Request.SessionKey)
        {
            reuse = 0;
        }

        _backend.TruncateSlot(slot.Id, reuse);
        slot.Tokens.RemoveRange(reuse, slot.Tokens.Count - reuse);
        return reuse;
    }

    private void RememberResidentText(string key, ScheduledRequest request, KvSlot slot)
    {
        var prompt = request.PromptTokens;
        if (request.PromptText is null || slot.Tokens.Count < prompt.Length || CommonPrefix(slot.Tokens, prompt) < prompt.Length)
        {
            _residentTexts.TryRemove(key, out _);
            return;
        }

        // The generated tokens in the KV (all but the last sampled one), as the text they stand for.
        var decoder = new Utf8StreamDecoder();
        var generated = new StringBuilder();
        Span<byte> buffer = stackalloc byte[MaxTokenBytes];
        for (var i = prompt.Length; i < slot.Tokens.Count; i++)
        {
            var length = Math.Clamp(_backend.Vocabulary.TokenToBytes(slot.Tokens[i], buffer), 0, MaxTokenBytes);
            generated.Append(decoder.Append(buffer[..length]));
        }

        // A character still unfinished at the end has no exact text: then nothing is remembered.
        if (decoder.Flush().Length > 0)
        {
            _residentTexts.TryRemove(key, out _);
            return;
        }

        _residentTexts[key] = new ResidentText(request.PromptText + generated, [.. slot.Tokens]);
    }

    [LoggerMessage(EventId = 1120, Level = LogLevel.Debug, Message = "Evicted idle session {SessionKey} from slot {Slot}")]
    private static partial void LogSessionEvicted(ILogger logger, string sessionKey, int slot);
}

/// <summary>One KV-cache slot: the tokens whose KV it holds, its running owner, and the session resident in it.</summary>
internal sealed class KvSlot(int id)
{
    public int Id { get; } = id;

    /// <summary>Tokens whose KV is in the slot, by position.</summary>
    public List<int> Tokens { get; } = [];

    public ScheduledRequest? Owner { get; set; }

    /// <summary>The owner's choice that generates in this slot.</summary>
    public ChoiceState? Choice { get; set; }

    /// <summary>The session whose conversation stays resident here between its requests.</summary>
    public string? SessionKey { get; set; }

    public long LastUsedAt { get; set; }

    public bool IsBusy => Owner is not null;
}
