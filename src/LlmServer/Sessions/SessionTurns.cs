using LlmServer.Engine.Generation;
using LlmServer.Operations.Limits;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>
/// Starts, stops and resumes a session's turns. A turn is planned (<see cref="TurnPlanner"/>), admitted by the engine,
/// then stored (its user message) before anything streams; the <see cref="GenerationPump"/> runs it from there,
/// independent of the connection that asked for it. The caller's concurrent-generation permit (<see cref="CallPermit"/>)
/// goes with the turn and is released when the engine is done with its generation, not when the request that started it
/// ends, nor when its answer is stored.
/// </summary>
internal sealed partial class SessionTurns
{
    private readonly ISessionStore _store;
    private readonly ITextGenerator _generator;
    private readonly TurnPlanner _planner;
    private readonly GenerationRegistry _registry;
    private readonly GenerationPump _pump;
    private readonly SessionMetrics _metrics;
    private readonly SessionOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<SessionTurns> _logger;

    public SessionTurns(
        ISessionStore store,
        ITextGenerator generator,
        TurnPlanner planner,
        GenerationRegistry registry,
        GenerationPump pump,
        SessionMetrics metrics,
        IOptions<SessionOptions> options,
        TimeProvider timeProvider,
        ILogger<SessionTurns> logger)
    {
        _store = store;
        _generator = generator;
        _planner = planner;
        _registry = registry;
        _pump = pump;
        _metrics = metrics;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>Appends a user message and answers it.</summary>
    public Task<GenerationSubscription> SendAsync(string? owner, string sessionId, string? text, CallPermit permit, CancellationToken cancellationToken)
    {
        var content = SessionValidation.MessageText(text, _options, "text");
        return StartAsync(owner, sessionId, messages => (messages.Count, content), permit, cancellationToken);
    }

    /// <summary>Answers the last user message again, replacing the assistant message that followed it.</summary>
    public Task<GenerationSubscription> RegenerateAsync(string? owner, string sessionId, CallPermit permit, CancellationToken cancellationToken) =>
        StartAsync(
            owner,
            sessionId,
            messages =>
            {
                var lastUser = LastUserIndex(messages);
                return lastUser < 0
                    ? throw SessionException.Invalid("sessionId", "the session has no user message to answer")
                    : (lastUser + 1, null);
            },
            permit,
            cancellationToken);

    /// <summary>Replaces user message <paramref name="index"/>, drops what followed it, and answers it.</summary>
    public Task<GenerationSubscription> EditAsync(string? owner, string sessionId, int index, string? text, CallPermit permit, CancellationToken cancellationToken)
    {
        var content = SessionValidation.MessageText(text, _options, "text");
        return StartAsync(
            owner,
            sessionId,
            messages =>
            {
                if (index < 0 || index >= messages.Count)
                {
                    throw SessionException.Invalid("index", $"message index {index} is out of range (the session has {messages.Count} messages)");
                }

                return messages[index].Role == "user"
                    ? (index, content)
                    : throw SessionException.Invalid("index", $"message {index} is an {messages[index].Role} message; only user messages can be edited");
            },
            permit,
            cancellationToken);
    }

    /// <summary>Stops the session's generation, if one runs here or on another server sharing the store.</summary>
    public async Task StopAsync(string? owner, string sessionId, CancellationToken cancellationToken)
    {
        await RequireSessionAsync(owner, sessionId, cancellationToken);
        if (_registry.IsGenerating(sessionId))
        {
            _registry.Stop(sessionId);
            return;
        }

        // A turn another server sharing the store runs: that server stops it (RemoteStopListener) and stores its answer.
        // False: no other server holds a live lease, so nothing runs there; a turn may have begun here meanwhile.
        if (!await _store.RequestStopAsync(owner, sessionId, cancellationToken))
        {
            _registry.Stop(sessionId);
        }
    }

    /// <summary>
    /// Listens to the session's running (or just finished) generation from after <paramref name="afterSeq"/>; takes
    /// no permit: the generation holds its own.
    /// </summary>
    public async Task<GenerationSubscription> ResumeAsync(string? owner, string sessionId, long afterSeq, CancellationToken cancellationToken)
    {
        if (afterSeq < 0)
        {
            throw SessionException.Invalid("afterSeq", "afterSeq must be 0 or more");
        }

        await RequireSessionAsync(owner, sessionId, cancellationToken);
        return _registry.Find(sessionId)?.Subscribe(afterSeq) ?? throw new SessionException(
            SessionErrorCodes.NoGeneration,
            "the session has no running or recently finished generation; read its messages with GetSession",
            "sessionId");
    }

    private async Task RequireSessionAsync(string? owner, string sessionId, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(sessionId);
        _ = await _store.GetAsync(owner, sessionId, cancellationToken) ?? throw SessionException.NotFound(sessionId);
    }

    /// <param name="startAt">
    /// From the stored messages: where the new turn starts (messages from there on are replaced) and the user
    /// message to put there (null to answer the message before it).
    /// </param>
    /// <param name="permit">The caller's permit: the started turn takes it; a refused turn leaves it to the caller.</param>
    private async Task<GenerationSubscription> StartAsync(
        string? owner,
        string sessionId,
        Func<IReadOnlyList<SessionMessage>, (int FromIndex, string? UserText)> startAt,
        CallPermit permit,
        CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(sessionId);
        var run = _registry.TryBegin(sessionId);
        if (run is null)
        {
            // Only a session that exists (for this caller) is busy; anything else is not found.
            await RequireSessionAsync(owner, sessionId, cancellationToken);
            throw new SessionException(SessionErrorCodes.Busy, "a generation is already running in this session; stop it or wait for it to finish", "sessionId");
        }

        var started = false;
        try
        {
            var (session, messages) = await _store.GetConversationAsync(owner, sessionId, cancellationToken) ?? throw SessionException.NotFound(sessionId);
            var (fromIndex, userText) = startAt(messages);
            var now = SessionTime.Now(_timeProvider);
            var userMessage = userText is null ? null : new SessionMessage(fromIndex, "user", userText, now, null, null, null, null);
            var history = userMessage is null ? messages.Take(fromIndex).ToList() : [.. messages.Take(fromIndex), userMessage];
            var plan = _planner.Plan(session, history);
            var stream = Submit(plan.Request);

            // The engine runs the generation from here: every way out but handing it to the pump cancels it (as SignalR's
            // stream dispatch cleans up in finally), and closes the answer a begun turn left open.
            var begun = false;
            AnswerRecorder? answer = null;
            try
            {
                // The turn is accepted: store it before anything streams (nothing is half-written if this fails).
                if (!await _store.BeginTurnAsync(owner, sessionId, fromIndex, userMessage, now, plan.ContextStart, cancellationToken))
                {
                    throw SessionException.NotFound(sessionId);
                }

                begun = true;
                if (plan.Slid)
                {
                    _metrics.WindowSlid();
                }

                run.Attach(stream, permit.Take());
                var subscription = run.Subscribe(0);
                var recorder = answer = new AnswerRecorder(_store, _options, _timeProvider, _logger, owner, sessionId, history.Count, plan.ContextStart);
                LogGenerationStarted(sessionId, stream.Id, stream.PromptTokens, plan.ContextStart);
                _registry.Started(run, () => _pump.RunAsync(run, stream, recorder, plan.ContextStart));
                started = true;
                return subscription;
            }
            finally
            {
                if (!started)
                {
                    answer?.Dispose();
                    await stream.DisposeAsync();
                    if (begun)
                    {
                        await CloseUnstartedAnswerAsync(owner, sessionId, history.Count, plan.ContextStart);
                    }
                }
            }
        }
        finally
        {
            if (!started)
            {
                _registry.Abandon(run);
            }
        }
    }

    /// <summary>
    /// Ends the empty answer a turn that failed after it was stored left behind, as the pump ends one whose generation
    /// failed (finish reason error), which also gives up the session's lease; best effort, a restart marks it interrupted.
    /// </summary>
    private async Task CloseUnstartedAnswerAsync(string? owner, string sessionId, int index, int contextStart)
    {
        var failed = new SessionMessage(index, "assistant", string.Empty, _timeProvider.GetUtcNow(), null, null, null, FinishReason.Error.ToName(), contextStart);
        try
        {
            // Not the caller's token: the caller may be the reason the turn failed.
            await _store.SaveAnswerAsync(owner, sessionId, failed, CancellationToken.None);
        }
#pragma warning disable CA1031 // The turn's own failure is what the caller gets; this one is only logged.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogAnswerNotClosed(ex, sessionId);
        }
    }

    private GenerationStream Submit(GenerationRequest request)
    {
        try
        {
            // Not the caller's token: the generation outlives the connection that started it.
            return _generator.Submit(request, CancellationToken.None);
        }
        catch (GenerationException ex)
        {
            throw SessionErrors.FromEngine(ex);
        }
    }

    private static int LastUserIndex(IReadOnlyList<SessionMessage> messages)
    {
        for (var i = messages.Count - 1; i >= 0; i--)
        {
            if (messages[i].Role == "user")
            {
                return i;
            }
        }

        return -1;
    }

    [LoggerMessage(EventId = 4100, Level = LogLevel.Debug, Message = "Session {SessionId}: generation {RequestId} started with {PromptTokens} prompt tokens, context from message {ContextStart}.")]
    private partial void LogGenerationStarted(string sessionId, string requestId, int promptTokens, int contextStart);

    [LoggerMessage(EventId = 4110, Level = LogLevel.Error, Message = "Session {SessionId}: a turn failed before it streamed, and its empty answer could not be marked as failed.")]
    private partial void LogAnswerNotClosed(Exception exception, string sessionId);
}
