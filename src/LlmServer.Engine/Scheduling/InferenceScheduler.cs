using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Threading;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Continuous batching over the KV slots of one context: the front door (submit, cancel, evict, status, from any
/// thread) and the loop. One thread owns the backend and is its only caller; each <see cref="Step"/> plans
/// (<see cref="StepPlanner"/>: the next token of every generating sequence, then prompt chunks within the step's
/// budget), decodes the plan as one batch (<see cref="StepDecoder"/>) and turns the result into text on each stream
/// (<see cref="OutputProcessor"/>). Slots and the sessions resident in them live in the <see cref="SlotTable"/>.
/// </summary>
internal sealed partial class InferenceScheduler : IDisposable
{
    private readonly Func<IInferenceBackend> _backendFactory;
    private readonly Func<DiskKvCache?>? _diskCacheFactory;
    private readonly SchedulerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IStepObserver[] _stepObservers;
    private readonly ConcurrentQueue<ScheduledRequest> _intake = new();

    // Closed by the loop as it takes in its intake for the last time; a request queued after that would never end.
    private readonly Lock _intakeLock = new();
    private volatile bool _intakeClosed;

    private readonly ConcurrentQueue<string> _evictions = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly StreamPublisher _publisher = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread _thread;

    // Owned by the scheduler thread (set once by Initialize; the slot table's resident texts are read from any thread).
    private readonly List<ScheduledRequest> _completed = [];

    // Requests that ended before they got a slot (cancelled in the queue, or failed as the loop stops): their streams
    // end with the retired ones, after the status that no longer counts them is published.
    private readonly List<ScheduledRequest> _unadmittedEnded = [];
    private volatile IInferenceBackend? _backend;
    private volatile SlotTable? _slots;
    private DiskKvCache? _diskCache;
    private StepCostModel? _costs;
    private StepPlanner? _planner;
    private StepDecoder? _decoder;
    private OutputProcessor? _output;

    // Requests submitted and not yet ended, by lane (index: RequestPriority).
    private readonly int[] _inFlight = new int[2];

    // Signalled each time the last request in flight ends: see WaitForIdleAsync.
    private readonly ChangeSignal _idle = new();
    private int _admissionClosed;
    private int _disposed;
    private volatile bool _stopRequested;
    private volatile bool _cancelAllRequested;
    private volatile bool _loopAlive;
    private volatile SchedulerStatus _status;
    private long _steps;
    private long _lastDecodeTicks;
    private long _busySinceTicks;

    public InferenceScheduler(
        Func<IInferenceBackend> backendFactory,
        SchedulerOptions options,
        TimeProvider time,
        ILogger logger,
        IMeterFactory? meterFactory = null,
        IEnumerable<IStepObserver>? stepObservers = null,
        Func<DiskKvCache?>? diskCacheFactory = null,
        string? modelId = null)
    {
        _backendFactory = backendFactory;
        _diskCacheFactory = diskCacheFactory;
        _options = options;
        _time = time;
        _logger = logger;
        _stepObservers = stepObservers?.ToArray() ?? [];
        _status = new SchedulerStatus(options.Slots, 0, 0, 0, 0, 0, false, null, 0);
        Metrics = new SchedulerMetrics(() => _status, meterFactory, modelId);
        _thread = new Thread(Run, SchedulerStackBytes) { IsBackground = true, Name = "llm-scheduler" };
    }

    public SchedulerMetrics Metrics { get; }

    /// <summary>
    /// Callers using the backend's model outside the loop (its vocabulary; a Submit creating samplers, which hold the
    /// model): the loop, as it ends, stopped or dead, closes the gate and frees the backend only once they have left.
    /// </summary>
    public UsageGate BackendUsers { get; } = new();

    /// <summary>
    /// The scheduler thread's stack. llama.cpp matches lazy-grammar triggers with std::regex, which recurses once a
    /// character of the generated text: on .NET's default 1.5 MB a trigger over about 16,000 characters overflows the
    /// stack and kills the process. Reserved, not committed: only what a match uses is paid for.
    /// </summary>
    private const int SchedulerStackBytes = 256 * 1024 * 1024;

    /// <summary>Completes when the backend is up and the loop runs; faults if the backend failed to start.</summary>
    public Task Started => _started.Task;

    /// <summary>Completes when the loop has ended (stopped or died).</summary>
    public Task Stopped => _stopped.Task;

    public int InFlight => Volatile.Read(ref _inFlight[0]) + Volatile.Read(ref _inFlight[1]);

    /// <summary>How long requests still running when a drain times out get to end once cancelled.</summary>
    internal static TimeSpan DrainCancelGrace { get; } = TimeSpan.FromSeconds(5);

    public SchedulerStatus GetStatus()
    {
        var status = _status;
        var batchInFlight = Volatile.Read(ref _inFlight[(int)RequestPriority.Batch]);
        return status with
        {
            LoopAlive = _loopAlive,
            BusySince = TicksToTime(Interlocked.Read(ref _busySinceTicks)),
            Waiting = Math.Max(0, InFlight - status.Running),
            BatchWaiting = Math.Max(0, batchInFlight - status.BatchRunning),
        };
    }

    public void Start() => _thread.Start();

    /// <summary>
    /// Refuses a prompt of <paramref name="tokens"/> tokens (a lower bound where <paramref name="atLeast"/>, counted
    /// before tokenizing: see <see cref="TokenCountBound"/>) that exceeds the request's prompt limit or leaves no room
    /// in a slot: the one home of the context-length refusal.
    /// </summary>
    public void EnsurePromptFits(GenerationRequest request, int tokens, bool atLeast) =>
        EnsurePromptFits(request, tokens, atLeast, _backend?.SlotContextSize ?? int.MaxValue);

    /// <summary>The most tokens the request's prompt may have: under its prompt limit, with room for an answer in a slot.</summary>
    public int MostPromptTokens(GenerationRequest request) => MostPromptTokens(request, _backend?.SlotContextSize ?? int.MaxValue);

    private static int MostPromptTokens(GenerationRequest request, int slotContext) =>
        Math.Min(slotContext - 1, request.PromptLimit?.MaxTokens ?? int.MaxValue);

    private static void EnsurePromptFits(GenerationRequest request, int tokens, bool atLeast, int slotContext)
    {
        if (tokens <= MostPromptTokens(request, slotContext))
        {
            return;
        }

        var has = atLeast ? $"at least {tokens}" : $"{tokens}";
        if (request.PromptLimit is { } limit && tokens > limit.MaxTokens)
        {
            // ContextLength stays unset: the limit is the operator's, not the slot's, and the message says so.
            throw new GenerationException(
                GenerationErrorCode.ContextLengthExceeded,
                $"This request's prompt has {has} tokens; this server accepts at most {limit.MaxTokens} prompt tokens per request ({limit.Setting}).",
                PromptField(request))
            {
                PromptTokens = tokens,
                PromptTokensAtLeast = atLeast,
            };
        }

        if (tokens >= slotContext)
        {
            throw new GenerationException(
                GenerationErrorCode.ContextLengthExceeded,
                $"The prompt has {has} tokens but a slot's context holds {slotContext} tokens, prompt and completion together.",
                PromptField(request))
            {
                PromptTokens = tokens,
                PromptTokensAtLeast = atLeast,
                ContextLength = slotContext,
            };
        }
    }

    /// <summary>Admits a request whose prompt is already tokenized. Throws <see cref="GenerationException"/> when refused.</summary>
    public GenerationStream Submit(GenerationRequest request, int[] promptTokens, CancellationToken cancellationToken) =>
        Submit(request, promptTokens, null, cancellationToken);

    /// <summary>As <see cref="Submit(GenerationRequest, int[], CancellationToken)"/>, with the prompt's text for session reuse.</summary>
    public GenerationStream Submit(GenerationRequest request, int[] promptTokens, string? promptText, CancellationToken cancellationToken) =>
        Submit(request, new TokenizedPrompt(promptTokens, []), promptText, cancellationToken);

    /// <summary>As <see cref="Submit(GenerationRequest, int[], CancellationToken)"/>, with the prompt's text and where it splits exactly.</summary>
    public GenerationStream Submit(GenerationRequest request, TokenizedPrompt prompt, string? promptText, CancellationToken cancellationToken)
    {
        // A Submit either finds the gate closed and touches nothing, or the loop frees the backend only after it left.
        if (!BackendUsers.TryEnter())
        {
            throw NotRunning();
        }

        try
        {
            return SubmitEntered(request, prompt, promptText, cancellationToken);
        }
        finally
        {
            BackendUsers.Exit();
        }
    }

    private GenerationStream SubmitEntered(GenerationRequest request, TokenizedPrompt prompt, string? promptText, CancellationToken cancellationToken)
    {
        var promptTokens = prompt.Tokens;
        var backend = _backend;
        if (backend is null || !_loopAlive || _stopRequested || _intakeClosed)
        {
            throw NotRunning();
        }

        var slotContext = backend.SlotContextSize;
        if (promptTokens.Length == 0)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "The prompt is empty.", PromptField(request));
        }

        EnsurePromptFits(request, promptTokens.Length, atLeast: false, slotContext);

        if (request.Choices > backend.SlotCount)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, $"{request.Choices} choices need {request.Choices} slots; the server has {backend.SlotCount}.", GenerationField.Choices);
        }

        var lane = (int)request.Priority;
        var batchLane = request.Priority == RequestPriority.Batch;
        var queue = batchLane ? _options.MaxBatchQueue : _options.MaxQueue;
        if (request.AdmittedTogether > backend.SlotCount + queue)
        {
            throw new GenerationException(
                GenerationErrorCode.InvalidRequest,
                $"This request has {request.AdmittedTogether} prompts; the server holds at most {backend.SlotCount + queue} at once ({backend.SlotCount} slots and a queue of {queue}, Scheduler:{(batchLane ? "MaxBatchQueue" : "MaxQueue")}).",
                PromptField(request));
        }

        var room = slotContext - promptTokens.Length;
        var maxTokens = request.MaxTokens ?? (_options.DefaultMaxTokens > 0 ? _options.DefaultMaxTokens : room);
        maxTokens = Math.Min(maxTokens, room);

        // The health check measures a stall from the later of the last decode and this moment: a scheduler idle for
        // an hour has not stalled because its first step in an hour has not ended yet.
        if (InFlight == 0)
        {
            Interlocked.Exchange(ref _busySinceTicks, _time.GetUtcNow().UtcTicks);
        }

        // Counted before the checks, and the drain closes admission before it reads the count (both fenced): a request
        // either is refused here or is counted where the drain sees it, never admitted unseen. A draining server says
        // so before it says it is full: retrying it is no use.
        var inFlight = Interlocked.Increment(ref _inFlight[lane]);
        if (Volatile.Read(ref _admissionClosed) != 0)
        {
            EndInFlight(lane);
            throw new GenerationException(GenerationErrorCode.Unavailable, "The server is shutting down.");
        }

        if (inFlight > backend.SlotCount + queue)
        {
            EndInFlight(lane);
            throw new GenerationException(GenerationErrorCode.Overloaded, request.Priority == RequestPriority.Batch
                ? "The server is busy: the batch queue is full. Retry later."
                : "The server is busy: the request queue is full. Retry later.")
            {
                BackOff = TimeSpan.FromSeconds(1),
            };
        }

        ChoiceState[] choices;
        try
        {
            choices = CreateChoices(backend, request);
        }
        catch
        {
            EndInFlight(lane);
            throw;
        }

        var id = request.RequestId ?? "gen-" + Guid.NewGuid().ToString("N")[..24];
        var scheduled = new ScheduledRequest(id, promptTokens, promptText, request, maxTokens, choices, _time.GetTimestamp(), _publisher, prompt.Boundaries);
        if (!TryEnqueue(scheduled))
        {
            // The loop stopped after the check above: refused like a request submitted a moment later.
            DisposeSamplers(choices);
            EndInFlight(lane);
            throw NotRunning();
        }

        _wake.Release();
        return new GenerationStream(id, promptTokens.Length, choices.Length, scheduled.Events, () => Cancel(scheduled), cancellationToken);
    }

    /// <summary>
    /// Queues a request unless the loop has taken in its intake for the last time (see <see cref="CloseIntake"/>):
    /// either the loop's last intake ends it with the others, or it is refused here.
    /// </summary>
    private bool TryEnqueue(ScheduledRequest request)
    {
        lock (_intakeLock)
        {
            if (_intakeClosed)
            {
                return false;
            }

            _intake.Enqueue(request);
            return true;
        }
    }

    /// <summary>No request joins the intake from now on: what is in it is all the loop's last intake will end.</summary>
    private void CloseIntake()
    {
        lock (_intakeLock)
        {
            _intakeClosed = true;
        }
    }

    private static GenerationException NotRunning() => new(GenerationErrorCode.Unavailable, "The scheduler is not running.");

    /// <summary>
    /// Frees what the loop owned, as it ends (stopped, dead, or failed to start), once no caller can still use the
    /// model: the loop thread cannot be one of them, it calls this from the bottom of its stack. Idle sessions' KV goes
    /// to disk first when the server stops, so a restart resumes them warm (not those evicted on the way out; not after
    /// a death, whose KV may be what failed); then the owner thread frees the context it created.
    /// </summary>
    private void FreeBackend()
    {
        var users = BackendUsers.Close();
        if (users > 0)
        {
            LogWaitingForUsers(_logger, users);
            BackendUsers.WaitForUsers();
        }

        if (_stopRequested)
        {
            SaveResidentSessions();
        }

        // On the loop thread's way out: a throw here would leave Stopped unset and kill the process.
        FreeLogged(_diskCache, "disk KV cache");
        FreeLogged(_backend, "backend");
    }

    private void FreeLogged(IDisposable? owned, string what)
    {
        try
        {
            owned?.Dispose();
        }
        catch (Exception ex)
        {
            LogFreeFailed(_logger, what, ex);
        }
    }

    /// <summary>The text and tokens a session's last request left in the KV cache (it may have been evicted since).</summary>
    public bool TryGetResidentText(string sessionKey, [NotNullWhen(true)] out ResidentText? resident)
    {
        resident = null;
        return _slots is { } slots && slots.TryGetResidentText(sessionKey, out resident);
    }

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
    /// Drains: refuses new requests from now on (<see cref="GenerationErrorCode.Unavailable"/>), waits up to
    /// <paramref name="timeout"/> (on the scheduler's <see cref="TimeProvider"/>) for those in flight to end, then
    /// cancels the rest and gives them <see cref="DrainCancelGrace"/> to end. A request admitted while the drain
    /// began is waited for like the others.
    /// </summary>
    public async Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Interlocked.Exchange(ref _admissionClosed, 1);
        if (await WaitForIdleAsync(timeout, cancellationToken))
        {
            return;
        }

        var left = InFlight;
        CancelAll();
        LogDrainCancelling(_logger, left);
        await WaitForIdleAsync(DrainCancelGrace, cancellationToken);
    }

    /// <summary>
    /// Completes with true once no request is in flight (a request admitted meanwhile is waited for too) or the loop
    /// has ended (nothing in flight can end after that), with false when <paramref name="timeout"/> passes first on
    /// the scheduler's <see cref="TimeProvider"/>. Throws <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    public async Task<bool> WaitForIdleAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            timeout = TimeSpan.Zero;
        }

        using var deadlineCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var deadline = Task.Delay(timeout, _time, deadlineCancellation.Token);
        try
        {
            while (true)
            {
                // The signal is read before the count: the end that brings the count to zero after this read completes it.
                var idle = _idle.Next;
                if (InFlight == 0 || _stopped.Task.IsCompleted)
                {
                    return true;
                }

                if (await Task.WhenAny(idle, _stopped.Task, deadline) == deadline)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    return InFlight == 0 || _stopped.Task.IsCompleted;
                }
            }
        }
        finally
        {
            // Frees the deadline's timer when the wait ended first.
            await deadlineCancellation.CancelAsync();
        }
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

    /// <summary>Where the request's prompt came from: its raw prompt or its messages.</summary>
    private static GenerationField PromptField(GenerationRequest request) =>
        request.Messages is null ? GenerationField.Prompt : GenerationField.Messages;

    private static ChoiceState[] CreateChoices(IInferenceBackend backend, GenerationRequest request)
    {
        // llama.cpp returns a NULL sampler for a grammar it cannot parse, and adding that NULL to a chain crashes.
        if (request.Grammar is not null && !GbnfValidator.TryValidate(request.Grammar, "root", out var grammarError))
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "The grammar does not parse: " + grammarError, GenerationField.Grammar);
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
                    sampler = backend.CreateSampler(sampling, request.Grammar, request.LazyTriggers, request.IgnoreEos);
                }
                catch (Exception ex) when (request.Grammar is not null && ex is not GenerationException)
                {
                    throw new GenerationException(GenerationErrorCode.InvalidRequest, "The grammar could not be parsed: " + ex.Message, GenerationField.Grammar);
                }

                choices[i] = new ChoiceState(i, sampler, request.Stop);
            }
        }
        catch
        {
            DisposeSamplers(choices);
            throw;
        }

        return choices;
    }

    private static void DisposeSamplers(ChoiceState?[] choices)
    {
        foreach (var choice in choices)
        {
            choice?.Sampler.Dispose();
        }
    }

    private void Cancel(ScheduledRequest request)
    {
        request.RequestCancel();
        _wake.Release();
    }

    private void Run()
    {
        var started = false;
        try
        {
            try
            {
                Initialize();
                started = true;
            }
            catch (Exception ex)
            {
                _started.TrySetException(ex);
                return;
            }

            _started.TrySetResult();
            Loop();
        }
        finally
        {
            _loopAlive = false;
            try
            {
                // A start that failed ran nothing to report: the status keeps the configured slots it showed while loading.
                if (started)
                {
                    PublishStep();
                }

                FreeBackend();
            }
            finally
            {
                _stopped.TrySetResult();
            }
        }
    }

    private void Loop()
    {
        try
        {
            while (!_stopRequested)
            {
                if (!Step() && !_stopRequested)
                {
                    _wake.Wait(IdleWait());
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
    }

    /// <summary>
    /// How long the loop sleeps with nothing to decode unless woken: a second, or, while a batch request waits out
    /// the interactive reservation of an idle slot, one step's measured time, so that the hold counts steps at the
    /// pace of the busy engine (the demand it reserves was measured in such steps).
    /// </summary>
    private TimeSpan IdleWait()
    {
        if (!_planner!.HoldsBatch)
        {
            return TimeSpan.FromSeconds(1);
        }

        var stepMs = _costs!.KnownGenerationMs(1);
        return TimeSpan.FromMilliseconds(stepMs == 0 ? Math.Max(1, _options.TargetStepMs) : Math.Clamp(stepMs, 1, 1000));
    }

    private void ApplyEvictions()
    {
        while (_evictions.TryDequeue(out var key))
        {
            _slots?.EvictSession(key);
        }
    }

    private void SaveResidentSessions()
    {
        try
        {
            ApplyEvictions();
            _slots?.SaveResidentSessions();
        }
        catch (Exception ex)
        {
            LogShutdownSaveFailed(_logger, ex);
        }
    }

    /// <summary>
    /// Creates the backend on the calling thread, which becomes the only one that may call <see cref="Step"/>:
    /// the loop's thread, or a test that steps the scheduler itself.
    /// </summary>
    internal void Initialize()
    {
        var backend = _backendFactory();
        _backend = backend;
        _diskCache = _diskCacheFactory?.Invoke();
        _slots = new SlotTable(backend, _logger, Metrics, _diskCache, _options.WarmSlide, kvSplitPerSequence: !_options.UnifiedKvCache);
        _costs = new StepCostModel(backend.SlotCount);
        _planner = new StepPlanner(_slots, _options, _costs, Metrics, _time);
        _decoder = new StepDecoder(backend, _logger);
        _output = new OutputProcessor(backend, _slots, Metrics, _time, _logger);
        _loopAlive = true;
        PublishStatus();
    }

    /// <summary>
    /// One step: take in new, cancelled and evicted work; plan which sequences decode a token and which prompt chunks
    /// go in; decode that plan as one batch; turn its output into tokens and text on each stream; retire finished
    /// requests. Returns false when there was nothing to decode.
    /// </summary>
    internal bool Step()
    {
        var started = _time.GetTimestamp();

        // Wake-ups for work taken in below are spent: left counted, each would run an idle step at once (and count
        // it against the batch lane's hold). Any signal after this point stays for the idle wait.
        while (_wake.Wait(0))
        {
        }

        TakeInWork();
        var plan = _planner!.Plan();
        if (plan.IsEmpty)
        {
            // Cancelled requests may have ended in this idle step: their readers wake to the status it left.
            PublishStep();
            return false;
        }

        var decodeStarted = _time.GetTimestamp();
        var outcome = _decoder!.Decode(plan);
        if (outcome == DecodeOutcome.Ok)
        {
            var decoded = _time.GetTimestamp();
            Interlocked.Exchange(ref _lastDecodeTicks, _time.GetUtcNow().UtcTicks);
            _steps++;
            _output!.Process(plan, decoded);
            Observe(new StepCost(plan.Tokens.Count, plan.PromptTokens, plan.PromptPositions, plan.Chunks.Count, _time.GetElapsedTime(decodeStarted, decoded), _time.GetElapsedTime(started)), plan.ExpectedMs);
        }
        else
        {
            RecoverFromFailedDecode(plan, outcome);
        }

        RetireFinished();
        PublishStep();
        return true;
    }

    /// <summary>
    /// Ends a step (decoding, idle, or the loop's last): the status first, so a reader woken by the step's events sees
    /// the slots and queue as the step left them; then the events reach their streams in one pass, one wake-up for
    /// every reader the step fed.
    /// </summary>
    private void PublishStep()
    {
        PublishStatus();
        _publisher.Publish();
    }

    private void Observe(in StepCost cost, double expectedMs)
    {
        LogStep(_logger, cost.GenerationTokens, cost.PromptTokens, cost.PromptChunks, cost.PromptTokens == 0 ? 0 : cost.PromptPositions / cost.PromptTokens, cost.DecodeTime.TotalMilliseconds, cost.StepTime.TotalMilliseconds, expectedMs);
        _costs!.OnStep(cost);
        foreach (var observer in _stepObservers)
        {
            observer.OnStep(cost);
        }
    }

    /// <summary>Arrivals join the queue, evicted sessions leave their slots, cancelled requests end.</summary>
    private void TakeInWork()
    {
        var planner = _planner!;
        while (_intake.TryDequeue(out var request))
        {
            planner.Enqueue(request);
        }

        ApplyEvictions();

        var cancelAll = _cancelAllRequested;
        _cancelAllRequested = false;
        DropCancelled(planner.Waiting, cancelAll);
        DropCancelled(planner.BatchWaiting, cancelAll);

        foreach (var request in planner.Running)
        {
            if (cancelAll || request.CancelRequested)
            {
                FinishAll(request, FinishReason.Cancelled, null);
            }
        }

        RetireFinished();
    }

    private void DropCancelled(List<ScheduledRequest> lane, bool cancelAll)
    {
        for (var i = lane.Count - 1; i >= 0; i--)
        {
            var request = lane[i];
            if (cancelAll || request.CancelRequested)
            {
                lane.RemoveAt(i);
                FinishAll(request, FinishReason.Cancelled, null);
                CompleteUnadmitted(request);
            }
        }
    }

    private void FinishAll(ScheduledRequest request, FinishReason reason, GenerationError? error)
    {
        foreach (var choice in request.Choices)
        {
            _output!.Finish(request, choice, reason, error);
        }
    }

    /// <summary>
    /// Running requests whose choices have all finished give back their slots; then, once the status counts them out,
    /// their streams end, and those of requests that ended before they got a slot.
    /// </summary>
    private void RetireFinished()
    {
        var running = _planner!.Running;
        _completed.Clear();
        for (var i = running.Count - 1; i >= 0; i--)
        {
            var request = running[i];
            if (request.FinishedChoices < request.Choices.Length)
            {
                continue;
            }

            running.RemoveAt(i);
            _slots!.Release(request, _time.GetTimestamp());
            _completed.Add(request);
        }

        if (_completed.Count == 0 && _unadmittedEnded.Count == 0)
        {
            return;
        }

        // The status a caller reads once its stream has ended (or the scheduler is idle) already counts its slot as free,
        // and no longer counts a request that ended before it got one.
        foreach (var request in _completed.Concat(_unadmittedEnded))
        {
            Interlocked.Decrement(ref _inFlight[(int)request.Request.Priority]);
        }

        PublishStatus();
        SignalIfIdle();
        foreach (var request in _completed)
        {
            request.Events.Complete();
        }

        foreach (var request in _unadmittedEnded)
        {
            request.Events.Complete();
        }

        _unadmittedEnded.Clear();
    }

    /// <summary>
    /// A request that never got a slot has ended: it leaves the in-flight count, and its stream ends, at the step's next
    /// <see cref="RetireFinished"/>, after the status that no longer counts it.
    /// </summary>
    private void CompleteUnadmitted(ScheduledRequest request) => _unadmittedEnded.Add(request);

    private void EndInFlight(int lane)
    {
        Interlocked.Decrement(ref _inFlight[lane]);
        SignalIfIdle();
    }

    /// <summary>
    /// Wakes the idle waiters when nothing is in flight. Called after every decrement (each a full fence), so of two
    /// lanes ending at once at least one sees both at zero.
    /// </summary>
    private void SignalIfIdle()
    {
        if (InFlight == 0)
        {
            _idle.Signal();
        }
    }

    private void RecoverFromFailedDecode(StepPlan plan, DecodeOutcome outcome)
    {
        // Prompt chunks go back to the queue's head and run again; if the step had none (or failed outright),
        // the requests in the batch fail: never the loop.
        var chunks = plan.Chunks;
        if (outcome == DecodeOutcome.NoKvSpace && chunks.Count > 0)
        {
            LogNoKvSpace(_logger, chunks.Count);
            foreach (var chunk in chunks)
            {
                _backend!.TruncateSlot(chunk.Slot, chunk.Start);
            }

            if (chunks.Count > 1)
            {
                // Make room: the later prompt requests give their slots back and return to the head of the queue.
                for (var i = chunks.Count - 1; i >= 1; i--)
                {
                    _planner!.Requeue(chunks[i].Request);
                }

                return;
            }
        }

        var error = new GenerationError(GenerationErrorCode.Internal, outcome == DecodeOutcome.NoKvSpace
            ? "The KV cache had no room for this request."
            : "Decoding failed.");
        foreach (var (request, choice) in plan.Tokens)
        {
            _output!.Finish(request, choice, FinishReason.Error, error);
        }

        foreach (var chunk in chunks)
        {
            FinishAll(chunk.Request, FinishReason.Error, error);
        }

        var slots = _slots!;
        for (var i = 0; i < slots.Count; i++)
        {
            if (slots[i].Owner is { } owner && owner.FinishedChoices == owner.Choices.Length)
            {
                // The slot's cells are in an unknown state after a failed decode: start it over.
                slots.Reset(slots[i]);
            }
        }
    }

    private void FailEverything(FinishReason reason, GenerationError? error)
    {
        var planner = _planner!;
        CloseIntake();
        while (_intake.TryDequeue(out var request))
        {
            planner.Enqueue(request);
        }

        foreach (var request in planner.Waiting.Concat(planner.BatchWaiting))
        {
            FinishAll(request, reason, error);
            CompleteUnadmitted(request);
        }

        planner.Waiting.Clear();
        planner.BatchWaiting.Clear();
        foreach (var request in planner.Running)
        {
            FinishAll(request, reason, error);
        }

        RetireFinished();
    }

    private void PublishStatus()
    {
        var lastDecode = Interlocked.Read(ref _lastDecodeTicks);
        var batchRunning = 0;
        foreach (var request in _planner?.Running ?? [])
        {
            if (request.IsBatch)
            {
                batchRunning++;
            }
        }

        _status = new SchedulerStatus(
            _slots?.Count ?? 0,
            _backend?.SlotContextSize ?? 0,
            _planner?.Running.Count ?? 0,
            (_planner?.Waiting.Count ?? 0) + (_planner?.BatchWaiting.Count ?? 0),
            _slots?.ResidentSessions ?? 0,
            _slots?.KvTokensUsed ?? 0,
            _loopAlive,
            TicksToTime(lastDecode),
            _steps)
        {
            BatchRunning = batchRunning,
            BatchWaiting = _planner?.BatchWaiting.Count ?? 0,
            KvTokensReusable = _slots?.KvTokensReusable ?? 0,
        };
    }

    private static DateTimeOffset? TicksToTime(long utcTicks) => utcTicks == 0 ? null : new DateTimeOffset(utcTicks, TimeSpan.Zero);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Warning, Message = "Drain timed out; cancelling {InFlight} requests")]
    private static partial void LogDrainCancelling(ILogger logger, int inFlight);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Critical, Message = "The scheduler loop died; every request failed and the engine is not ready")]
    private static partial void LogLoopDied(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1107, Level = LogLevel.Debug, Message = "The scheduler loop ended: waiting for {Users} callers still using the model before freeing it")]
    private static partial void LogWaitingForUsers(ILogger logger, int users);

    [LoggerMessage(EventId = 1108, Level = LogLevel.Error, Message = "Freeing the scheduler's {What} as its loop ended failed")]
    private static partial void LogFreeFailed(ILogger logger, string what, Exception exception);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "Saving resident sessions' KV at shutdown failed")]
    private static partial void LogShutdownSaveFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1106, Level = LogLevel.Trace, Message = "Step: {GenerationTokens} generating, {PromptTokens} prompt tokens in {PromptChunks} chunks, {MeanDepth:F0} deep on average; decode {DecodeMs:F1} ms, step {StepMs:F1} ms (expected {ExpectedMs:F1})")]
    private static partial void LogStep(ILogger logger, int generationTokens, int promptTokens, int promptChunks, double meanDepth, double decodeMs, double stepMs, double expectedMs);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "No KV space for a step with {PromptChunks} prompt chunks; shrinking the step")]
    private static partial void LogNoKvSpace(ILogger logger, int promptChunks);
}
