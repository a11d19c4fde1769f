using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text;
using LlmServer.Engine.KvCache;
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
    /// <summary>Fewest kept tokens worth a warm slide (fewer matching tokens may be chance).</summary>
    private const int MinSlideTokens = 8;

    /// <summary>
    /// What one more run of busy slots costs, in prompt tokens to prefill, at most (a request generating fewer
    /// tokens pays fewer steps of it). With the KV cache split per sequence, llama.cpp decodes each run of
    /// consecutive sequence ids as a micro-batch of its own: one more pass over the weights every step for the rest
    /// of the request (measured on synth110m: 4 generating slots 0, 2, 4, 6 took 1.6x the step of slots 0 to 3;
    /// <c>--batch-shapes</c>). Over an answer's hundred-odd steps that outweighs prefilling a few hundred tokens
    /// that a longer cached prefix elsewhere would have saved.
    /// </summary>
    private const int RunCostTokens = 256;

    private readonly IInferenceBackend _backend;
    private readonly ILogger _logger;
    private readonly SchedulerMetrics? _metrics;
    private readonly DiskKvCache? _diskCache;
    private readonly bool _warmSlide;
    private readonly int _runCost;
    private readonly KvSlot[] _slots;
    private readonly ConcurrentDictionary<string, ResidentText> _residentTexts = new(StringComparer.Ordinal);

    /// <summary>Sessions evicted while a request of theirs ran: their slot is emptied when it finishes, not kept.</summary>
    private readonly HashSet<string> _evictOnRelease = new(StringComparer.Ordinal);

    /// <param name="kvSplitPerSequence">
    /// Whether the context splits its KV cache per sequence; then the busy slots are kept contiguous where a prefix
    /// does not weigh more (see <see cref="RunCostTokens"/>). A unified cache decodes any set of slots in one pass.
    /// </param>
    public SlotTable(IInferenceBackend backend, ILogger logger, SchedulerMetrics? metrics = null, DiskKvCache? diskCache = null, bool warmSlide = true, bool kvSplitPerSequence = true)
    {
        _backend = backend;
        _warmSlide = warmSlide;
        _runCost = kvSplitPerSequence ? RunCostTokens : 0;
        _logger = logger;
        _metrics = metrics;
        _diskCache = diskCache;
        if (diskCache is not null && metrics is not null)
        {
            // A save counts when its write ends (in the background), so the metric says what reached the disk.
            diskCache.WriteEnded += metrics.KvSaveEnded;
        }

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

    /// <summary>KV cells held by running requests (their prompt and answer so far).</summary>
    public int KvTokensUsed => KvTokens(busy: true);

    /// <summary>
    /// KV cells idle slots keep for reuse: finished requests' prefixes and idle sessions' conversations. A new
    /// request may take them over (its prompt's shared prefix is not prefilled again) or overwrite them.
    /// </summary>
    public int KvTokensReusable => KvTokens(busy: false);

    private int KvTokens(bool busy)
    {
        var cells = 0;
        foreach (var slot in _slots)
        {
            if (slot.IsBusy == busy)
            {
                cells += slot.Tokens.Count;
            }
        }

        return cells;
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

    /// <summary>
    /// The text and tokens a session's last request left in the KV cache (it may have been evicted since): kept in
    /// memory while resident, then read from its saved state on disk (after an eviction or a restart).
    /// </summary>
    public bool TryGetResidentText(string sessionKey, [NotNullWhen(true)] out ResidentText? resident)
    {
        if (_residentTexts.TryGetValue(sessionKey, out resident))
        {
            return true;
        }

        resident = _diskCache?.TryLoad(sessionKey) is { Text: { } text } saved ? new ResidentText(text, saved.Tokens, saved.Boundaries) : null;
        return resident is not null;
    }

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
        var evicted = request.Request.SessionKey is { } session && _evictOnRelease.Remove(session);
        foreach (var choice in request.Choices)
        {
            if (Unassign(choice) is not { } slot)
            {
                continue;
            }

            slot.LastUsedAt = now;
            if (evicted && choice.Index == 0)
            {
                Clear(slot);
            }
            else if (choice.Index == 0 && request.Request.SessionKey is { } key)
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

    /// <summary>
    /// Forgets a session: its text, its saved state, and its KV: at once if its slot is idle, else when the request
    /// running in it finishes (which would otherwise make it resident again).
    /// </summary>
    public void EvictSession(string key)
    {
        _residentTexts.TryRemove(key, out _);
        _diskCache?.Delete(key);
        foreach (var slot in _slots)
        {
            if (slot.IsBusy && slot.Owner!.Request.SessionKey == key)
            {
                _evictOnRelease.Add(key);
            }
            else if (slot.SessionKey == key && !slot.IsBusy)
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
    /// The session's own slot if it is resident; else the free slot with the best prompt prefix less the cost of
    /// the run of busy slots it would start (least recently used on ties); else the least recently used idle
    /// session, which is evicted.
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

        // A request that generates only a few tokens pays a run's extra pass only that many steps.
        var runCost = Math.Min(_runCost, request?.MaxTokens ?? _runCost);
        KvSlot? best = null;
        var bestScore = int.MinValue;
        foreach (var slot in _slots)
        {
            if (slot.IsBusy || slot.SessionKey is not null)
            {
                continue;
            }

            var score = (request is null ? 0 : CommonPrefix(slot.Tokens, request.Prefill)) - (runCost * RunsAdded(slot.Id));
            if (score > bestScore || (score == bestScore && slot.LastUsedAt < best!.LastUsedAt))
            {
                best = slot;
                bestScore = score;
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
        SaveToDisk(best, waitForRoom: false);
        _residentTexts.TryRemove(best.SessionKey!, out _);
        best.SessionKey = null;
        return best;
    }

    /// <summary>How many runs of busy slots claiming this free slot adds: 1 alone, 0 beside a run, -1 joining two.</summary>
    private int RunsAdded(int slot)
    {
        var runs = 1;
        if (slot > 0 && _slots[slot - 1].IsBusy)
        {
            runs--;
        }

        if (slot < _slots.Length - 1 && _slots[slot + 1].IsBusy)
        {
            runs--;
        }

        return runs;
    }

    /// <summary>Writes every idle resident session's state to the disk cache (at shutdown, so a restart finds them).</summary>
    public void SaveResidentSessions()
    {
        foreach (var slot in _slots)
        {
            if (slot.SessionKey is not null && !slot.IsBusy)
            {
                SaveToDisk(slot, waitForRoom: true);
            }
        }
    }

    private void SaveToDisk(KvSlot slot, bool waitForRoom)
    {
        if (_diskCache is null || slot.SessionKey is not { } key || slot.Tokens.Count == 0)
        {
            return;
        }

        // The bytes are copied out here (the context belongs to this thread); the disk write happens in the background.
        byte[] state;
        try
        {
            state = _backend.SaveSlot(slot.Id);
        }
        catch (Exception ex) when (ex is OverflowException or OutOfMemoryException or InvalidOperationException)
        {
            // A state too large for one array (or for memory) is not kept: the session prefills next time.
            LogSaveFailed(_logger, key, slot.Id, ex);
            _metrics?.KvSaveEnded(written: false);
            return;
        }

        var known = _residentTexts.TryGetValue(key, out var resident) && resident.Tokens.AsSpan().SequenceEqual(CollectionsMarshal.AsSpan(slot.Tokens));
        var saved = new SavedKvState(key, [.. slot.Tokens], state, known ? resident!.Text : null, known ? resident!.Boundaries : []);
        if (!_diskCache.Save(saved, waitForRoom))
        {
            _metrics?.KvSaveEnded(written: false);
        }
    }

    /// <summary>
    /// Keeps what the slot's KV can give the prompt and returns how many prompt tokens that covers. A session request
    /// whose slot is not its own first restores its saved state from disk when that gives more. Then: the common
    /// prefix; and for a session whose window slid (the prompt drops a span of the resident tokens and continues with
    /// later resident tokens), the kept span's cells are moved down over the dropped ones, so only the new suffix is
    /// prefilled. Tokens are compared by id, never by text.
    /// </summary>
    private int KeepPrefix(KvSlot slot, ScheduledRequest request, bool prefixReuse)
    {
        var key = request.Request.SessionKey;
        if (!prefixReuse || (slot.SessionKey is not null && slot.SessionKey != key))
        {
            Truncate(slot, 0);
            return 0;
        }

        // A preempted batch request comes back with what it had generated: that is prefilled too.
        var prompt = request.Prefill;
        var canShift = key is not null && _warmSlide && _backend.CanShift;
        var plan = Plan(CollectionsMarshal.AsSpan(slot.Tokens), prompt, canShift);
        var restored = key is not null && slot.SessionKey != key && TryRestore(slot, key, prompt, canShift, ref plan);
        var reuse = plan.Reused;
        if (plan.KeptLength > 0)
        {
            Truncate(slot, plan.KeptFrom + plan.KeptLength);
            _backend.RemoveAndShift(slot.Id, plan.Prefix, plan.KeptFrom);
            slot.Tokens.RemoveRange(plan.Prefix, plan.KeptFrom - plan.Prefix);
            _metrics?.WarmSlide(plan.KeptLength);
            LogWarmSlide(_logger, key!, slot.Id, plan.Prefix, plan.KeptFrom - plan.Prefix, plan.KeptLength);
        }
        else
        {
            Truncate(slot, reuse);
        }

        if (restored)
        {
            _metrics?.KvRestored(reuse);
        }

        return reuse;
    }

    /// <summary>Restores the session's saved state into the slot when it covers more of the prompt than the slot does.</summary>
    private bool TryRestore(KvSlot slot, string key, int[] prompt, bool canShift, ref SlidePlan plan)
    {
        if (_diskCache is null)
        {
            return false;
        }

        var saved = _diskCache.TryLoad(key);
        var savedPlan = saved is null || saved.Tokens.Length > _backend.SlotContextSize ? default : Plan(saved.Tokens, prompt, canShift);
        if (savedPlan.Reused <= plan.Reused)
        {
            _metrics?.KvRestoreMissed();
            return false;
        }

        if (!_backend.RestoreSlot(slot.Id, saved!.State))
        {
            LogRestoreRefused(_logger, key, slot.Id, saved.Tokens.Length);
            slot.Tokens.Clear();
            plan = default;
            _metrics?.KvRestoreMissed();
            return false;
        }

        slot.Tokens.Clear();
        slot.Tokens.AddRange(saved.Tokens);
        plan = savedPlan;
        LogRestored(_logger, key, slot.Id, saved.Tokens.Length, savedPlan.Reused);
        return true;
    }

    /// <summary>
    /// What cached tokens can serve the prompt: the common prefix, then (when shifting is allowed) the longest run of
    /// cached tokens further on that continues the prompt exactly where the prefix ends. At least the last prompt token
    /// is decoded again: its logits give the first generated token.
    /// </summary>
    internal static SlidePlan Plan(ReadOnlySpan<int> cached, int[] prompt, bool canShift)
    {
        var limit = prompt.Length - 1;
        var prefix = Math.Min(cached.CommonPrefixLength(prompt), limit);
        if (!canShift || prefix >= limit || prefix >= cached.Length)
        {
            return new SlidePlan(prefix, 0, 0);
        }

        var next = prompt[prefix];
        var bestFrom = 0;
        var bestLength = 0;
        for (var from = prefix + 1; from < cached.Length && cached.Length - from > bestLength; from++)
        {
            if (cached[from] != next)
            {
                continue;
            }

            var length = cached[from..].CommonPrefixLength(prompt.AsSpan(prefix, limit - prefix));
            if (length > bestLength)
            {
                bestFrom = from;
                bestLength = length;
            }
        }

        return bestLength >= MinSlideTokens ? new SlidePlan(prefix, bestFrom, bestLength) : new SlidePlan(prefix, 0, 0);
    }

    private void Truncate(KvSlot slot, int keep)
    {
        _backend.TruncateSlot(slot.Id, keep);
        if (keep < slot.Tokens.Count)
        {
            slot.Tokens.RemoveRange(keep, slot.Tokens.Count - keep);
        }
    }

    private void RememberResidentText(string key, ScheduledRequest request, KvSlot slot)
    {
        var prompt = request.PromptTokens;
        if (request.PromptText is null || slot.Tokens.Count < prompt.Length || CommonPrefix(slot.Tokens, prompt) < prompt.Length)
        {
            _residentTexts.TryRemove(key, out _);
            return;
        }

        // The generated tokens in the KV (all but the last sampled one), as the text they stand for: as the output
        // rendered them (preserved markers as text), the text the client sends back in the next prompt.
        var decoder = new Utf8StreamDecoder();
        var generated = decoder.Append(_backend.Vocabulary.Utf8Of(CollectionsMarshal.AsSpan(slot.Tokens)[prompt.Length..], request.Request.PreservedTokens));

        // A character still unfinished at the end has no exact text: then nothing is remembered.
        if (decoder.Flush().Length > 0)
        {
            _residentTexts.TryRemove(key, out _);
            return;
        }

        _residentTexts[key] = new ResidentText(request.PromptText + generated, [.. slot.Tokens], [.. request.PromptBoundaries, new(request.PromptText.Length, prompt.Length)]);
    }

    [LoggerMessage(EventId = 1120, Level = LogLevel.Debug, Message = "Evicted idle session {SessionKey} from slot {Slot}")]
    private static partial void LogSessionEvicted(ILogger logger, string sessionKey, int slot);

    [LoggerMessage(EventId = 1121, Level = LogLevel.Debug, Message = "Session {SessionKey} slid its window warm in slot {Slot}: kept {Prefix} leading tokens, dropped {Dropped}, moved {Kept} down")]
    private static partial void LogWarmSlide(ILogger logger, string sessionKey, int slot, int prefix, int dropped, int kept);

    [LoggerMessage(EventId = 1122, Level = LogLevel.Debug, Message = "Session {SessionKey} restored from disk into slot {Slot}: {Tokens} tokens saved, {Reused} reused")]
    private static partial void LogRestored(ILogger logger, string sessionKey, int slot, int tokens, int reused);

    [LoggerMessage(EventId = 1124, Level = LogLevel.Warning, Message = "The KV state of session {SessionKey} in slot {Slot} could not be copied out; it is not saved")]
    private static partial void LogSaveFailed(ILogger logger, string sessionKey, int slot, Exception exception);

    [LoggerMessage(EventId = 1123, Level = LogLevel.Warning, Message = "The context refused the saved KV state of session {SessionKey} ({Tokens} tokens) in slot {Slot}; prefilling instead")]
    private static partial void LogRestoreRefused(ILogger logger, string sessionKey, int slot, int tokens);
}

/// <summary>
/// Reuse of a slot's tokens for a prompt: <see cref="Prefix"/> leading tokens stay where they are, then
/// <see cref="KeptLength"/> tokens at <see cref="KeptFrom"/> move down to continue the prefix (none when 0).
/// </summary>
internal readonly record struct SlidePlan(int Prefix, int KeptFrom, int KeptLength)
{
    public int Reused => Prefix + KeptLength;
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
