using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.Sampling;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Continuous batching over the KV slots of one context. One thread owns the backend and is its only caller:
/// each step decodes one batch holding the next token of every generating sequence first, then prompt chunks of
/// admitted requests within the step's token budget (one budget, no separate prefill phase). Requests wait in
/// arrival order; a session's sequence stays resident in its slot between requests and is evicted least recently
/// used when a slot is needed.
/// </summary>
internal sealed partial class InferenceScheduler : IDisposable
{
    private const int MaxTokenBytes = 256;

    private readonly Func<IInferenceBackend> _backendFactory;
    private readonly SchedulerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<ScheduledRequest> _intake = new();
    private readonly ConcurrentQueue<string> _evictions = new();
    private readonly ConcurrentDictionary<string, ResidentText> _residentTexts = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0);
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread _thread;

    // Owned by the scheduler thread.
    private readonly List<ScheduledRequest> _waiting = [];
    private readonly List<ScheduledRequest> _running = [];
    private readonly List<ChoiceState> _toSample = [];
    private readonly List<(ScheduledRequest Request, int Count)> _chunks = [];
    private readonly List<ScheduledRequest> _completed = [];
    private KvSlot[] _slots = [];
    private ChoiceState?[] _generatingBySlot = [];
    private int[] _chunkBySlot = [];
    private IInferenceBackend? _backend;

    private int _inFlight;
    private int _disposed;
    private volatile bool _stopRequested;
    private volatile bool _cancelAllRequested;
    private volatile bool _loopAlive;
    private volatile SchedulerStatus _status;
    private long _steps;
    private long _lastDecodeTicks;

    public InferenceScheduler(Func<IInferenceBackend> backendFactory, SchedulerOptions options, TimeProvider time, ILogger logger, IMeterFactory? meterFactory = null)
    {
        _backendFactory = backendFactory;
        _options = options;
        _time = time;
        _logger = logger;
        _status = new SchedulerStatus(options.Slots, 0, 0, 0, 0, 0, false, null, 0);
        Metrics = new SchedulerMetrics(() => _status, meterFactory);
        _thread = new Thread(Run) { IsBackground = true, Name = "llm-scheduler" };
    }

    public SchedulerMetrics Metrics { get; }

    /// <summary>Completes when the backend is up and the loop runs; faults if the backend failed to start.</summary>
    public Task Started => _started.Task;

    /// <summary>Completes when the loop has ended (stopped or died).</summary>
    public Task Stopped => _stopped.Task;

    public IInferenceBackend Backend => _backend ?? throw new InvalidOperationException("The scheduler has not started.");

    public int SlotContextSize => _backend?.SlotContextSize ?? 0;

    public int InFlight => Volatile.Read(ref _inFlight);

    public SchedulerStatus GetStatus() => _status with
    {
        LoopAlive = _loopAlive,
        Waiting = Math.Max(0, Volatile.Read(ref _inFlight) - _status.Running),
    };

    public void Start() => _thread.Start();

    /// <summary>Admits a request whose prompt is already tokenized. Throws <see cref="GenerationException"/> when refused.</summary>
    public GenerationStream Submit(GenerationRequest request, int[] promptTokens, CancellationToken cancellationToken) =>
        Submit(request, promptTokens, null, cancellationToken);

    /// <summary>As <see cref="Submit(GenerationRequest, int[], CancellationToken)"/>, with the prompt's text for session reuse.</summary>
    public GenerationStream Submit(GenerationRequest request, int[] promptTokens, string? promptText, CancellationToken cancellationToken)
    {
        var backend = _backend;
        if (backend is null || !_loopAlive || _stopRequested)
        {
            throw new GenerationException(GenerationErrorCode.Unavailable, "The scheduler is not running.");
        }

        var slotContext = backend.SlotContextSize;
        if (promptTokens.Length == 0)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "The prompt is empty.", "prompt");
        }

        if (promptTokens.Length >= slotContext)
        {
            throw new GenerationException(
                GenerationErrorCode.ContextLengthExceeded,
                $"The prompt has {promptTokens.Length} tokens but a slot's context holds {slotContext} tokens, prompt and completion together.",
                "messages")
            {
                PromptTokens = promptTokens.Length,
                ContextLength = slotContext,
            };
        }

        if (request.Choices > backend.SlotCount)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, $"{request.Choices} choices need {request.Choices} slots; the server has {backend.SlotCount}.", "n");
        }

        var room = slotContext - promptTokens.Length;
        var maxTokens = request.MaxTokens ?? (_options.DefaultMaxTokens > 0 ? _options.DefaultMaxTokens : room);
        maxTokens = Math.Min(maxTokens, room);

        if (Interlocked.Increment(ref _inFlight) > backend.SlotCount + _options.MaxQueue)
        {
            Interlocked.Decrement(ref _inFlight);
            throw new GenerationException(GenerationErrorCode.Overloaded, "The server is busy: the request queue is full. Retry later.")
            {
                RetryAfter = TimeSpan.FromSeconds(1),
            };
        }

        ChoiceState[] choices;
        try
        {
            choices = CreateChoices(backend, request);
        }
        catch
        {
            Interlocked.Decrement(ref _inFlight);
            throw;
        }

        var id = request.RequestId ?? "gen-" + Guid.NewGuid().ToString("N")[..24];
        var scheduled = new ScheduledRequest(id, promptTokens, promptText, request, maxTokens, choices, _time.GetTimestamp());
        var stream = new GenerationStream(id, promptTokens.Length, choices.Length, scheduled.Events.Reader, () => Cancel(scheduled), cancellationToken);
        _intake.Enqueue(scheduled);
        _wake.Release();
        return stream;
    }

    /// <summary>The text and tokens a session's last request left in the KV cache (it may have been evicted since).</summary>
    public bool TryGetResidentText(string sessionKey, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ResidentText? resident) =>
        _residentTexts.TryGetValue(sessionKey, out resident);

    /// <summary>Forgets a session's resident sequence (the slot becomes free).</summary>
    public void EvictSession(string sessionKey)
    {
        _evictions.Enqueue(sessionKey);
        _wake.Release();
    }

    /// <summary>Cancels every queued and running request.</summary>
    public void CancelAll()
    {
        foreach (var request in _intake)
        {
            request.RequestCancel();
        }

        _cancelAllRequested = true;
        _wake.Release();
    }

    /// <summary>
    /// Stops the loop (cancelling what is left) and frees the backend. The wake semaphore is not disposed:
    /// streams may still call <see cref="GenerationStream.Cancel"/> afterwards, and it holds no native handle.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopRequested = true;
        _wake.Release();
        if (_thread.IsAlive && Thread.CurrentThread != _thread)
        {
            _thread.Join(TimeSpan.FromSeconds(30));
        }

        Metrics.Dispose();
    }

    private static ChoiceState[] CreateChoices(IInferenceBackend backend, GenerationRequest request)
    {
        // llama.cpp returns a NULL sampler for a grammar it cannot parse, and adding that NULL to a chain crashes.
        if (request.Grammar is not null && !GbnfValidator.TryValidate(request.Grammar, "root", out var grammarError))
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "The grammar does not parse: " + grammarError, "grammar");
        }

        var choices = new ChoiceState[request.Choices];
        try
        {
            for (var i = 0; i < choices.Length; i++)
            {
                // Each choice samples on its own; with a fixed seed, choice i uses seed + i so choices differ.
                var sampling = request.Sampling.Seed is { } seed && i > 0 ? request.Sampling with { Seed = unchecked(seed + (uint)i) } : request.Sampling;
                ITokenSampler sampler;
                try
                {
                    sampler = backend.CreateSampler(sampling, request.Grammar, request.GrammarTriggers, request.IgnoreEos);
                }
                catch (Exception ex) when (request.Grammar is not null && ex is not GenerationException)
                {
                    throw new GenerationException(GenerationErrorCode.InvalidRequest, "The grammar could not be parsed: " + ex.Message, "grammar");
                }

                choices[i] = new ChoiceState(i, sampler, request.Stop);
            }
        }
        catch
        {
            foreach (var choice in choices)
            {
                choice?.Sampler.Dispose();
            }

            throw;
        }

        return choices;
    }

    private void Cancel(ScheduledRequest request)
    {
        request.RequestCancel();
        _wake.Release();
    }

    private void Run()
    {
        try
        {
            Initialize();
            _started.TrySetResult();
        }
        catch (Exception ex)
        {
            _started.TrySetException(ex);
            _stopped.TrySetResult();
            return;
        }

        try
        {
            while (!_stopRequested)
            {
                if (!Step())
                {
                    _wake.Wait(TimeSpan.FromSeconds(1));
                }
            }

            FailEverything(FinishReason.Cancelled, null);
        }
        catch (Exception ex)
        {
            LogLoopDied(_logger, ex);
            _loopAlive = false;
            FailEverything(FinishReason.Error, new GenerationError(GenerationErrorCode.Internal, "The scheduler stopped: " + ex.Message));
        }
        finally
        {
            _loopAlive = false;
            PublishStatus();
            if (_stopRequested)
            {
                // The owner thread frees the context it created.
                _backend?.Dispose();
            }

            _stopped.TrySetResult();
        }
    }

    /// <summary>Creates the backend on the calling thread, which becomes the loop's (tests call it and <see cref="Step"/> directly).</summary>
    internal void Initialize()
    {
        _backend = _backendFactory();
        _slots = new KvSlot[_backend.SlotCount];
        _generatingBySlot = new ChoiceState?[_slots.Length];
        _chunkBySlot = new int[_slots.Length];
        for (var i = 0; i < _slots.Length; i++)
        {
            _slots[i] = new KvSlot(i);
        }

        _loopAlive = true;
        PublishStatus();
    }

    /// <summary>One scheduling step. Returns false when there was nothing to do.</summary>
    internal bool Step()
    {
        var backend = _backend!;
        DrainIntake();
        ApplyEvictions();
        ReapCancelled();
        Admit(backend);

        var hasPrompt = _running.Exists(r => r.IsPrefilling);
        var generating = 0;
        foreach (var request in _running)
        {
            foreach (var choice in request.Choices)
            {
                choice.BatchIndex = -1;
                if (choice.IsGenerating && !choice.IsDone)
                {
                    generating++;
                }
            }
        }

        if (generating == 0 && !hasPrompt)
        {
            PublishStatus();
            return false;
        }

        backend.BeginBatch(hasPrompt);
        _toSample.Clear();
        _chunks.Clear();
        Array.Clear(_chunkBySlot);
        Array.Clear(_generatingBySlot);
        foreach (var request in _running)
        {
            foreach (var choice in request.Choices)
            {
                if (choice.IsGenerating && !choice.IsDone)
                {
                    _generatingBySlot[choice.Slot] = choice;
                }
            }
        }

        // Prompt budget goes to admitted requests in arrival order.
        var budget = _options.StepTokenBudget - generating;
        var chunks = _chunks;
        foreach (var request in _running)
        {
            if (budget <= 0)
            {
                break;
            }

            if (request.IsPrefilling)
            {
                var count = Math.Min(budget, request.PromptTokens.Length - request.Prefilled);
                chunks.Add((request, count));
                _chunkBySlot[request.Choices[0].Slot] = count;
                budget -= count;
            }
        }

        // The batch lists sequences in ascending slot order: with a KV cache split per sequence, llama.cpp splits
        // a batch whose sequence ids are out of order into several micro-batches, which costs up to 2x a step.
        for (var slot = 0; slot < _slots.Length; slot++)
        {
            if (_generatingBySlot[slot] is { } choice)
            {
                choice.BatchIndex = backend.AddToBatch(choice.PendingToken, choice.Position, slot, true);
                _toSample.Add(choice);
            }
            else if (_chunkBySlot[slot] > 0)
            {
                AddPromptChunk(backend, _slots[slot].Owner!, _chunkBySlot[slot]);
            }
        }

        var outcome = DecodeSafely(backend);
        if (outcome != DecodeOutcome.Ok)
        {
            HandleFailedDecode(backend, outcome, chunks);
            PublishStatus();
            return true;
        }

        Interlocked.Exchange(ref _lastDecodeTicks, _time.GetUtcNow().UtcTicks);
        _steps++;
        var now = _time.GetTimestamp();

        foreach (var choice in _toSample)
        {
            _slots[choice.Slot].Tokens.Add(choice.PendingToken);
            choice.Position++;
        }

        foreach (var (request, count) in chunks)
        {
            var slot = _slots[request.Choices[0].Slot];
            slot.Tokens.AddRange(request.PromptTokens.AsSpan(request.Prefilled, count));
            request.Prefilled += count;
            if (!request.IsPrefilling)
            {
                request.PrefillDoneAt = now;
                ForkChoices(backend, request);
                foreach (var choice in request.Choices)
                {
                    choice.Position = request.PromptTokens.Length;
                    _toSample.Add(choice);
                }
            }
        }

        foreach (var choice in _toSample)
        {
            var request = FindOwner(choice);
            if (request is null || choice.IsDone)
            {
                continue;
            }

            try
            {
                SampleAndEmit(backend, request, choice, now);
            }
            catch (Exception ex)
            {
                // A failure in one request (sampler, grammar, ...) ends that request only.
                LogRequestFailed(_logger, request.Id, ex);
                FinishChoice(request, choice, FinishReason.Error, new GenerationError(GenerationErrorCode.Internal, ex.Message));
            }
        }

        CompleteFinishedRequests();
        PublishStatus();
        return true;
    }

    private static void AddPromptChunk(IInferenceBackend backend, ScheduledRequest request, int count)
    {
        var slot = request.Choices[0].Slot;
        var completes = request.Prefilled + count == request.PromptTokens.Length;
        for (var i = 0; i < count; i++)
        {
            var position = request.Prefilled + i;
            var wantLogits = completes && i == count - 1;
            var index = backend.AddToBatch(request.PromptTokens[position], position, slot, wantLogits);
            if (wantLogits)
            {
                foreach (var choice in request.Choices)
                {
                    choice.BatchIndex = index;
                }
            }
        }
    }

    private DecodeOutcome DecodeSafely(IInferenceBackend backend)
    {
        try
        {
            return backend.Decode();
        }
        catch (Exception ex)
        {
            LogDecodeFailed(_logger, ex);
            return DecodeOutcome.Failed;
        }
    }

    private ScheduledRequest? FindOwner(ChoiceState choice) => choice.Slot >= 0 ? _slots[choice.Slot].Owner : null;

    private void DrainIntake()
    {
        while (_intake.TryDequeue(out var request))
        {
            _waiting.Add(request);
        }
    }

    private void ApplyEvictions()
    {
        while (_evictions.TryDequeue(out var key))
        {
            _residentTexts.TryRemove(key, out _);
            foreach (var slot in _slots)
            {
                if (slot.SessionKey == key && !slot.IsBusy)
                {
                    slot.SessionKey = null;
                    _backend!.TruncateSlot(slot.Id, 0);
                    slot.Tokens.Clear();
                }
            }
        }
    }

    private void ReapCancelled()
    {
        var cancelAll = _cancelAllRequested;
        _cancelAllRequested = false;
        for (var i = _waiting.Count - 1; i >= 0; i--)
        {
            var request = _waiting[i];
            if (cancelAll || request.CancelRequested)
            {
                _waiting.RemoveAt(i);
                foreach (var choice in request.Choices)
                {
                    FinishChoice(request, choice, FinishReason.Cancelled, null);
                }

                Complete(request);
            }
        }

        foreach (var request in _running)
        {
            if (cancelAll || request.CancelRequested)
            {
                foreach (var choice in request.Choices)
                {
                    if (!choice.IsDone)
                    {
                        FinishChoice(request, choice, FinishReason.Cancelled, null);
                    }
                }
            }
        }

        CompleteFinishedRequests();
    }

    /// <summary>Starts waiting requests in arrival order while slots are free (evicting idle sessions if needed).</summary>
    private void Admit(IInferenceBackend backend)
    {
        while (_waiting.Count > 0)
        {
            var request = _waiting[0];
            var needed = request.Choices.Length;
            var available = 0;
            foreach (var slot in _slots)
            {
                if (!slot.IsBusy)
                {
                    available++;
                }
            }

            if (available < needed)
            {
                return;
            }

            _waiting.RemoveAt(0);
            var now = _time.GetTimestamp();
            request.AdmittedAt = now;
            request.IsAdmitted = true;
            Metrics.Queued(_time.GetElapsedTime(request.ArrivedAt, now));

            var first = ChooseSlot(request);
            AssignSlot(request, request.Choices[0], first);
            ReusePrefix(backend, request, first);
            for (var i = 1; i < needed; i++)
            {
                AssignSlot(request, request.Choices[i], ChooseSlot(null));
            }

            _running.Add(request);
        }
    }

    /// <summary>
    /// The session's own slot if it is resident; else the free slot sharing the longest prefix with the prompt
    /// (least recently used on ties); else the least recently used idle session, which is evicted.
    /// </summary>
    private KvSlot ChooseSlot(ScheduledRequest? request)
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

            var prefix = request is null ? 0 : CommonPrefix(slot.Tokens, request.PromptTokens);
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

    private static void AssignSlot(ScheduledRequest request, ChoiceState choice, KvSlot slot)
    {
        slot.Owner = request;
        choice.Slot = slot.Id;
    }

    private void ReusePrefix(IInferenceBackend backend, ScheduledRequest request, KvSlot slot)
    {
        // At least the last prompt token is decoded again: its logits give the first generated token.
        var reuse = _options.PrefixReuse ? Math.Min(CommonPrefix(slot.Tokens, request.PromptTokens), request.PromptTokens.Length - 1) : 0;
        if (slot.SessionKey is not null && slot.SessionKey != request.Request.SessionKey)
        {
            reuse = 0;
        }

        backend.TruncateSlot(slot.Id, reuse);
        slot.Tokens.RemoveRange(reuse, slot.Tokens.Count - reuse);
        request.Prefilled = reuse;
        request.CachedTokens = reuse;
        Metrics.PrefixLookup(request.PromptTokens.Length, reuse);
    }

    internal static int CommonPrefix(List<int> cached, int[] prompt)
    {
        var max = Math.Min(cached.Count, prompt.Length);
        var i = 0;
        while (i < max && cached[i] == prompt[i])
        {
            i++;
        }

        return i;
    }

    /// <summary>Extra choices start from a copy of the prompt's KV in choice 0's slot instead of a second prefill.</summary>
    private void ForkChoices(IInferenceBackend backend, ScheduledRequest request)
    {
        var source = _slots[request.Choices[0].Slot];
        for (var i = 1; i < request.Choices.Length; i++)
        {
            var target = _slots[request.Choices[i].Slot];
            backend.CopySlot(source.Id, target.Id);
            target.Tokens.Clear();
            target.Tokens.AddRange(source.Tokens);
        }
    }

    private void SampleAndEmit(IInferenceBackend backend, ScheduledRequest request, ChoiceState choice, long now)
    {
        var token = choice.Sampler.Sample(backend, choice.BatchIndex);
        if (choice.FirstTokenAt == 0)
        {
            choice.FirstTokenAt = now;
            Metrics.FirstToken(_time.GetElapsedTime(request.ArrivedAt, now));
        }
        else
        {
            Metrics.NextToken(_time.GetElapsedTime(choice.LastTokenAt, now));
        }

        choice.LastTokenAt = now;
        var vocabulary = backend.Vocabulary;
        if (!request.Request.IgnoreEos && vocabulary.IsEndOfGeneration(token))
        {
            FinishChoice(request, choice, FinishReason.Stop, null);
            return;
        }

        choice.Generated++;
        Metrics.GeneratedToken();
        choice.UnemittedTokens++;
        Span<byte> bytes = stackalloc byte[MaxTokenBytes];
        var length = vocabulary.TokenToBytes(token, bytes);
        var piece = bytes[..Math.Clamp(length, 0, MaxTokenBytes)];
        if (request.Request.LogProbs)
        {
            (choice.UnemittedLogProbs ??= []).Add(LogProbCalculator.Compute(backend, choice.BatchIndex, token, request.Request.TopLogProbs));
        }

        var text = choice.Decoder.Append(piece);
        var (emit, stopped) = choice.StopMatcher.Push(text);
        if (emit.Length > 0)
        {
            Emit(request, choice, emit);
        }

        if (stopped)
        {
            FinishChoice(request, choice, FinishReason.Stop, null);
            return;
        }

        // The next decode needs a free cell in the slot for this token.
        if (choice.Generated >= request.MaxTokens || choice.Position >= backend.SlotContextSize)
        {
            FinishChoice(request, choice, FinishReason.Length, null);
            return;
        }

        choice.PendingToken = token;
        choice.IsGenerating = true;
    }

    private static void Emit(ScheduledRequest request, ChoiceState choice, string text)
    {
        request.Events.Writer.TryWrite(new TextDelta(choice.Index, text, choice.UnemittedTokens, choice.UnemittedLogProbs));
        choice.UnemittedTokens = 0;
        choice.UnemittedLogProbs = null;
    }

    private void FinishChoice(ScheduledRequest request, ChoiceState choice, FinishReason reason, GenerationError? error)
    {
        if (choice.IsDone)
        {
            return;
        }

        choice.IsDone = true;
        choice.IsGenerating = false;
        if (reason != FinishReason.Error)
        {
            // Text held back for a possible stop sequence or an unfinished character belongs to the answer.
            var rest = choice.Decoder.Flush();
            var (emit, _) = choice.StopMatcher.Push(rest);
            emit += reason == FinishReason.Stop ? string.Empty : choice.StopMatcher.Flush();
            if (emit.Length > 0)
            {
                Emit(request, choice, emit);
            }
        }

        var now = _time.GetTimestamp();
        var admitted = request.AdmittedAt == 0 ? now : request.AdmittedAt;
        var prefillDone = request.PrefillDoneAt == 0 ? now : request.PrefillDoneAt;
        var timings = new GenerationTimings(
            _time.GetElapsedTime(request.ArrivedAt, admitted),
            _time.GetElapsedTime(admitted, prefillDone),
            _time.GetElapsedTime(prefillDone, now));
        var usage = new GenerationUsage(request.PromptTokens.Length, request.CachedTokens, choice.Generated);
        request.Events.Writer.TryWrite(new GenerationCompleted(choice.Index, reason, usage, timings, error));
        request.FinishedChoices++;
        choice.Sampler.Dispose();

        var reasonName = reason.ToString().ToLowerInvariant();
        if (choice.Index == 0)
        {
            Metrics.Finished(reasonName, request.PromptTokens.Length, _time.GetElapsedTime(request.ArrivedAt, now));
            LogRequestFinished(_logger, request.Id, reasonName, request.PromptTokens.Length, request.CachedTokens, choice.Generated, timings.Queued.TotalMilliseconds, timings.Prefill.TotalMilliseconds, timings.Decode.TotalMilliseconds);
        }
    }

    private void CompleteFinishedRequests()
    {
        _completed.Clear();
        for (var i = _running.Count - 1; i >= 0; i--)
        {
            var request = _running[i];
            if (request.FinishedChoices < request.Choices.Length)
            {
                continue;
            }

            _running.RemoveAt(i);
            var now = _time.GetTimestamp();
            foreach (var choice in request.Choices)
            {
                if (choice.Slot < 0)
                {
                    continue;
                }

                var slot = _slots[choice.Slot];
                slot.Owner = null;
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

            _completed.Add(request);
        }

        if (_completed.Count == 0)
        {
            return;
        }

        // The status a caller reads once its stream has ended already counts its slot as free.
        Interlocked.Add(ref _inFlight, -_completed.Count);
        PublishStatus();
        foreach (var request in _completed)
        {
            request.Events.Writer.TryComplete();
        }
    }

    private void RememberResidentText(string key, ScheduledRequest request, KvSlot slot)
    {
        var prompt = request.PromptTokens;
        if (request.PromptText is null || slot.Tokens.Count < prompt.Length || InferenceScheduler.CommonPrefix(slot.Tokens, prompt) < prompt.Length)
        {
            _residentTexts.TryRemove(key, out _);
            return;
        }

        // The generated tokens in the KV (all but the last sampled one), as the text they stand for.
        var decoder = new Text.Utf8StreamDecoder();
        var generated = new System.Text.StringBuilder();
        Span<byte> buffer = stackalloc byte[MaxTokenBytes];
        for (var i = prompt.Length; i < slot.Tokens.Count; i++)
        {
            var length = Math.Clamp(_backend!.Vocabulary.TokenToBytes(slot.Tokens[i], buffer), 0, MaxTokenBytes);
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

    private void Complete(ScheduledRequest request)
    {
        Interlocked.Decrement(ref _inFlight);
        request.Events.Writer.TryComplete();
    }

    private void HandleFailedDecode(IInferenceBackend backend, DecodeOutcome outcome, List<(ScheduledRequest Request, int Count)> chunks)
    {
        // Prompt chunks go back to the queue's head and run again; if the step had none (or failed outright),
        // the requests in the batch fail: never the loop.
        if (outcome == DecodeOutcome.NoKvSpace && chunks.Count > 0)
        {
            LogNoKvSpace(_logger, chunks.Count);
            foreach (var (request, _) in chunks)
            {
                var slot = _slots[request.Choices[0].Slot];
                backend.TruncateSlot(slot.Id, request.Prefilled);
            }

            if (chunks.Count > 1)
            {
                // Make the step smaller: later prompt requests wait for the first to finish prefilling.
                for (var i = chunks.Count - 1; i >= 1; i--)
                {
                    Requeue(backend, chunks[i].Request);
                }

                return;
            }
        }

        var error = new GenerationError(GenerationErrorCode.Internal, outcome == DecodeOutcome.NoKvSpace
            ? "The KV cache had no room for this request."
            : "Decoding failed.");
        foreach (var choice in _toSample)
        {
            var request = FindOwner(choice);
            if (request is not null)
            {
                FinishChoice(request, choice, FinishReason.Error, error);
            }
        }

        foreach (var (request, _) in chunks)
        {
            foreach (var choice in request.Choices)
            {
                FinishChoice(request, choice, FinishReason.Error, error);
            }
        }

        foreach (var slot in _slots)
        {
            if (slot.Owner is { } owner && owner.FinishedChoices == owner.Choices.Length)
            {
                // The slot's cells are in an unknown state after a failed decode: start it over.
                backend.TruncateSlot(slot.Id, 0);
                slot.Tokens.Clear();
                slot.SessionKey = null;
            }
        }

        CompleteFinishedRequests();
    }

    private void Requeue(IInferenceBackend backend, ScheduledRequest request)
    {
        _running.Remove(request);
        foreach (var choice in request.Choices)
        {
            var slot = _slots[choice.Slot];
            slot.Owner = null;
            backend.TruncateSlot(slot.Id, 0);
            slot.Tokens.Clear();
            choice.Slot = -1;
        }

        request.IsAdmitted = false;
        request.Prefilled = 0;
        request.CachedTokens = 0;
        _waiting.Insert(0, request);
    }

    private void FailEverything(FinishReason reason, GenerationError? error)
    {
        DrainIntake();
        foreach (var request in _waiting.Concat(_running).ToList())
        {
            foreach (var choice in request.Choices)
            {
                FinishChoice(request, choice, reason, error);
            }

            if (!_running.Contains(request))
            {
                Complete(request);
            }
        }

        _waiting.Clear();
        CompleteFinishedRequests();
    }

    private void PublishStatus()
    {
        var kv = 0;
        var resident = 0;
        foreach (var slot in _slots)
        {
            kv += slot.Tokens.Count;
            if (slot.SessionKey is not null && !slot.IsBusy)
            {
                resident++;
            }
        }

        var lastDecode = Interlocked.Read(ref _lastDecodeTicks);
        _status = new SchedulerStatus(
            _slots.Length,
            _backend?.SlotContextSize ?? 0,
            _running.Count,
            _waiting.Count,
            resident,
            kv,
            _loopAlive,
            lastDecode == 0 ? null : new DateTimeOffset(lastDecode, TimeSpan.Zero),
            _steps);
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "The scheduler loop died; every request failed and the engine is not ready")]
    private static partial void LogLoopDied(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId} failed")]
    private static partial void LogRequestFailed(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Decode threw")]
    private static partial void LogDecodeFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No KV space for a step with {PromptChunks} prompt chunks; shrinking the step")]
    private static partial void LogNoKvSpace(ILogger logger, int promptChunks);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Evicted idle session {SessionKey} from slot {Slot}")]
    private static partial void LogSessionEvicted(ILogger logger, string sessionKey, int slot);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} finished: {FinishReason}, prompt {PromptTokens} tokens ({CachedTokens} cached), completion {CompletionTokens} tokens, queued {QueuedMs:F1} ms, prefill {PrefillMs:F1} ms, decode {DecodeMs:F1} ms")]
    private static partial void LogRequestFinished(ILogger logger, string requestId, string finishReason, int promptTokens, int cachedTokens, int completionTokens, double queuedMs, double prefillMs, double decodeMs);
}
