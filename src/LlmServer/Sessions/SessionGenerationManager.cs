using System.Collections.Concurrent;
using System.Text;
using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>
/// Runs the sessions' generations: at most one per session, independent of the connection that asked for it.
/// The user message is stored when the engine admits the turn; the assistant message when the generation ends,
/// however it ends. A finished run stays resumable for the grace period, so a client that dropped just before
/// the last event still gets it.
/// </summary>
internal sealed partial class SessionGenerationManager : IHostedService, IDisposable
{
    private readonly SessionStore _store;
    private readonly ITextGenerator _generator;
    private readonly SessionOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<SessionGenerationManager> _logger;
    private readonly ConcurrentDictionary<string, GenerationRun> _running = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, GenerationRun> _recent = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<GenerationRun, Task> _pumps = new();

    public SessionGenerationManager(
        SessionStore store,
        ITextGenerator generator,
        IOptions<SessionOptions> options,
        TimeProvider timeProvider,
        ILogger<SessionGenerationManager> logger)
    {
        _store = store;
        _generator = generator;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public bool IsGenerating(string sessionId) => _running.ContainsKey(sessionId);

    /// <summary>Appends a user message and answers it.</summary>
    public Task<GenerationSubscription> SendAsync(string? owner, string sessionId, string? text, CancellationToken cancellationToken)
    {
        var content = SessionValidation.MessageText(text, _options, "text");
        return StartAsync(owner, sessionId, messages => (messages.Count, content), cancellationToken);
    }

    /// <summary>Answers the last user message again, replacing the assistant message that followed it.</summary>
    public Task<GenerationSubscription> RegenerateAsync(string? owner, string sessionId, CancellationToken cancellationToken) =>
        StartAsync(
            owner,
            sessionId,
            messages =>
            {
                var lastUser = LastIndexOf(messages, "user");
                return lastUser < 0
                    ? throw SessionException.Invalid("sessionId", "the session has no user message to answer")
                    : (lastUser + 1, null);
            },
            cancellationToken);

    /// <summary>Replaces user message <paramref name="index"/>, drops what followed it, and answers it.</summary>
    public Task<GenerationSubscription> EditAsync(string? owner, string sessionId, int index, string? text, CancellationToken cancellationToken)
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
            cancellationToken);
    }

    /// <summary>Stops the session's generation, if one runs.</summary>
    public async Task StopGenerationAsync(string? owner, string sessionId, CancellationToken cancellationToken)
    {
        await RequireSessionAsync(owner, sessionId, cancellationToken);
        if (_running.TryGetValue(sessionId, out var run))
        {
            run.Stop();
        }
    }

    /// <summary>Listens to the session's running (or just finished) generation from after <paramref name="afterSeq"/>.</summary>
    public async Task<GenerationSubscription> ResumeAsync(string? owner, string sessionId, long afterSeq, CancellationToken cancellationToken)
    {
        if (afterSeq < 0)
        {
            throw SessionException.Invalid("afterSeq", "afterSeq must be 0 or more");
        }

        await RequireSessionAsync(owner, sessionId, cancellationToken);
        if (_running.TryGetValue(sessionId, out var run) || _recent.TryGetValue(sessionId, out run))
        {
            return run.Subscribe(afterSeq);
        }

        throw new SessionException(
            SessionErrorCodes.NoGeneration,
            "the session has no running or recently finished generation; read its messages with GetSession",
            "sessionId");
    }

    /// <summary>Stops the session's generation, waits until its message is stored, deletes the session and frees its KV slot.</summary>
    public async Task DeleteAsync(string? owner, string sessionId, CancellationToken cancellationToken)
    {
        await RequireSessionAsync(owner, sessionId, cancellationToken);
        if (_running.TryGetValue(sessionId, out var run))
        {
            run.Stop();
            await run.Finished.WaitAsync(cancellationToken);
        }

        if (!await _store.DeleteAsync(owner, sessionId, cancellationToken))
        {
            throw SessionException.NotFound(sessionId);
        }

        if (_recent.TryRemove(sessionId, out var recent))
        {
            recent.Dispose();
        }

        EvictQuietly(sessionId);
        LogSessionDeleted(sessionId);
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _store.InitializeAsync(cancellationToken);
        LogStoreReady(_store.DatabasePath, SessionStore.SchemaVersion);
    }

    /// <summary>On shutdown every running generation is stopped and stored as cancelled.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var run in _running.Values)
        {
            run.Stop();
        }

        await Task.WhenAll(_pumps.Values).WaitAsync(cancellationToken);
    }

    public void Dispose()
    {
        foreach (var run in _recent.Values)
        {
            run.Dispose();
        }

        foreach (var run in _running.Values)
        {
            run.Dispose();
        }
    }

    private async Task<StoredSession> RequireSessionAsync(string? owner, string sessionId, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(sessionId);
        return await _store.GetAsync(owner, sessionId, cancellationToken) ?? throw SessionException.NotFound(sessionId);
    }

    /// <param name="plan">
    /// From the stored messages: where the new turn starts (messages from there on are replaced) and the user
    /// message to put there (null to answer the message before it).
    /// </param>
    private async Task<GenerationSubscription> StartAsync(
        string? owner,
        string sessionId,
        Func<IReadOnlyList<SessionMessage>, (int FromIndex, string? UserText)> plan,
        CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(sessionId);
        var run = new GenerationRun(sessionId, _timeProvider, _options.ResumeGrace);
        if (!_running.TryAdd(sessionId, run))
        {
            // Only a session that exists (for this caller) is busy; anything else is not found.
            await RequireSessionAsync(owner, sessionId, cancellationToken);
            run.Dispose();
            throw new SessionException(SessionErrorCodes.Busy, "a generation is already running in this session; stop it or wait for it to finish", "sessionId");
        }

        var started = false;
        try
        {
            var loaded = await _store.GetWithMessagesAsync(owner, sessionId, cancellationToken) ?? throw SessionException.NotFound(sessionId);
            var (session, messages) = loaded;
            var (fromIndex, userText) = plan(messages);
            var now = _timeProvider.GetUtcNow();
            var userMessage = userText is null ? null : new SessionMessage(fromIndex, "user", userText, now, null, null, null, null);

            var history = new List<ChatTurn>(fromIndex + 2);
            if (!string.IsNullOrEmpty(session.SystemPrompt))
            {
                history.Add(new ChatTurn("system", session.SystemPrompt));
            }

            history.AddRange(messages.Take(fromIndex).Select(ToTurn));
            if (userMessage is not null)
            {
                history.Add(new ChatTurn(userMessage.Role, userMessage.Content));
            }

            var stream = Submit(BuildRequest(session, history));
            try
            {
                // The turn is accepted: store it before anything streams (nothing is half-written if this fails).
                if (!await _store.ReplaceTailAsync(sessionId, fromIndex, userMessage, now, cancellationToken))
                {
                    throw SessionException.NotFound(sessionId);
                }
            }
            catch
            {
                await stream.DisposeAsync();
                throw;
            }

            if (_recent.TryRemove(sessionId, out var previous))
            {
                previous.Dispose();
            }

            run.Attach(stream);
            var subscription = run.Subscribe(0);
            var assistantIndex = userMessage is null ? fromIndex : fromIndex + 1;
            // Tracked before it starts, so a pump that ends at once still finds (and removes) its own entry.
            var pump = new Task<Task>(() => PumpAsync(run, stream, assistantIndex));
            _pumps[run] = pump.Unwrap();
            pump.Start(TaskScheduler.Default);
            started = true;
            LogGenerationStarted(sessionId, stream.Id, stream.PromptTokens);
            return subscription;
        }
        finally
        {
            if (!started)
            {
                _running.TryRemove(new KeyValuePair<string, GenerationRun>(sessionId, run));
                run.Dispose();
            }
        }
    }

    /// <summary>
    /// A stored message as a chat turn, verbatim: the engine keeps a session's KV warm by matching the re-rendered
    /// history against the exact text the model generated, so an answer must come back exactly as it was generated.
    /// </summary>
    private static ChatTurn ToTurn(SessionMessage message) => new(message.Role, message.Content);

    private GenerationRequest BuildRequest(StoredSession session, IReadOnlyList<ChatTurn> history)
    {
        var settings = session.Settings;
        var defaults = new SamplingOptions();
        return new GenerationRequest
        {
            Messages = history,
            Sampling = defaults with
            {
                Temperature = settings.Temperature is { } temperature ? (float)temperature : defaults.Temperature,
                TopP = settings.TopP is { } topP ? (float)topP : defaults.TopP,
                Seed = settings.Seed is { } seed ? (uint)seed : null,
            },
            MaxTokens = settings.MaxTokens ?? (_options.DefaultMaxTokens > 0 ? _options.DefaultMaxTokens : null),
            SessionKey = session.Id,
        };
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
            throw new SessionException(ToErrorCode(ex.Code), ex.Message, ex.Parameter) { RetryAfter = ex.RetryAfter };
        }
    }

    private async Task PumpAsync(GenerationRun run, GenerationStream stream, int assistantIndex)
    {
        var text = new StringBuilder();
        GenerationCompleted? completed = null;
        string? failure = null;
        try
        {
            await foreach (var item in stream.ReadAllAsync(CancellationToken.None))
            {
                switch (item)
                {
                    case TextDelta { Choice: 0 } delta when delta.Text.Length > 0:
                        text.Append(delta.Text);
                        run.Publish(seq => new ChatStreamEvent(seq, ChatStreamEvent.DeltaType, Text: delta.Text));
                        break;
                    case GenerationCompleted { Choice: 0 } done:
                        completed = done;
                        break;
                }
            }
        }
#pragma warning disable CA1031 // The pump must always store and publish an ending, whatever the engine threw.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogGenerationFailed(ex, run.SessionId);
            failure = "the generation failed inside the server";
        }
        finally
        {
            await stream.DisposeAsync();
        }

        var finishReason = completed?.FinishReason ?? FinishReason.Error;
        var usage = completed?.Usage;
        var message = new SessionMessage(
            assistantIndex,
            "assistant",
            text.ToString(),
            _timeProvider.GetUtcNow(),
            usage?.PromptTokens,
            usage?.CachedPromptTokens,
            usage?.CompletionTokens,
            ToWire(finishReason));
        try
        {
            if (!await _store.AppendAsync(run.SessionId, message, message.CreatedAt, CancellationToken.None))
            {
                // Deleted while it ran: nothing to keep, and no KV to leave behind.
                EvictQuietly(run.SessionId);
            }
        }
#pragma warning disable CA1031 // Listeners must still get an ending when the store fails.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogStoreFailed(ex, run.SessionId);
            failure ??= "the assistant message could not be stored";
        }
        finally
        {
            // Resumable as a recent run before it stops counting as running, so a resume never falls in between.
            _recent[run.SessionId] = run;
            _running.TryRemove(new KeyValuePair<string, GenerationRun>(run.SessionId, run));
            run.RetainFor(() =>
            {
                if (_recent.TryRemove(new KeyValuePair<string, GenerationRun>(run.SessionId, run)))
                {
                    run.Dispose();
                }
            });
            run.Publish(seq => Ending(seq, completed, finishReason, failure), final: true);
            _pumps.TryRemove(run, out _);
            LogGenerationEnded(run.SessionId, message.FinishReason!, usage?.CompletionTokens ?? 0);
        }
    }

    private static ChatStreamEvent Ending(long seq, GenerationCompleted? completed, FinishReason finishReason, string? failure)
    {
        var usage = completed is null
            ? null
            : new ChatUsage(completed.Usage.PromptTokens, completed.Usage.CachedPromptTokens, completed.Usage.CompletionTokens);
        var timings = completed is null ? null : ToTimings(completed);
        if (failure is not null || finishReason == FinishReason.Error)
        {
            var code = completed?.Error is { } error ? ToErrorCode(error.Code) : SessionErrorCodes.InternalError;
            var text = failure ?? completed?.Error?.Message ?? "the generation failed";
            return new ChatStreamEvent(seq, ChatStreamEvent.ErrorType, FinishReason: "error", Usage: usage, Timings: timings, Code: code, Message: text);
        }

        return new ChatStreamEvent(seq, ChatStreamEvent.DoneType, FinishReason: ToWire(finishReason), Usage: usage, Timings: timings);
    }

    private static ChatTimings ToTimings(GenerationCompleted completed)
    {
        var timings = completed.Timings;
        var decodeSeconds = timings.Decode.TotalSeconds;
        return new ChatTimings(
            timings.Queued.TotalMilliseconds,
            timings.Prefill.TotalMilliseconds,
            timings.Decode.TotalMilliseconds,
            decodeSeconds > 0 ? completed.Usage.CompletionTokens / decodeSeconds : 0);
    }

    private void EvictQuietly(string sessionId)
    {
        try
        {
            _generator.EvictSession(sessionId);
        }
#pragma warning disable CA1031 // Freeing the KV slot is best effort: the scheduler reclaims idle slots anyway.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogEvictFailed(ex, sessionId);
        }
    }

    private static int LastIndexOf(IReadOnlyList<SessionMessage> messages, string role)
    {
        for (var i = messages.Count - 1; i >= 0; i--)
        {
            if (messages[i].Role == role)
            {
                return i;
            }
        }

        return -1;
    }

    internal static string ToWire(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.Cancelled => "cancelled",
        _ => "error",
    };

    internal static string ToErrorCode(GenerationErrorCode code) => code switch
    {
        GenerationErrorCode.InvalidRequest or GenerationErrorCode.TemplateRefused => SessionErrorCodes.InvalidArgument,
        GenerationErrorCode.Overloaded => SessionErrorCodes.Overloaded,
        GenerationErrorCode.ContextLengthExceeded => SessionErrorCodes.ContextLengthExceeded,
        GenerationErrorCode.Unavailable => SessionErrorCodes.Unavailable,
        _ => SessionErrorCodes.InternalError,
    };

    [LoggerMessage(Level = LogLevel.Information, Message = "Sessions database {Path} ready (schema version {Version}).")]
    private partial void LogStoreReady(string path, int version);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Session {SessionId}: generation {RequestId} started with {PromptTokens} prompt tokens.")]
    private partial void LogGenerationStarted(string sessionId, string requestId, int promptTokens);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Session {SessionId}: generation ended ({FinishReason}, {CompletionTokens} tokens).")]
    private partial void LogGenerationEnded(string sessionId, string finishReason, int completionTokens);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId}: the generation stream failed.")]
    private partial void LogGenerationFailed(Exception exception, string sessionId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Session {SessionId}: the assistant message could not be stored.")]
    private partial void LogStoreFailed(Exception exception, string sessionId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session {SessionId}: freeing its KV slot failed.")]
    private partial void LogEvictFailed(Exception exception, string sessionId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Session {SessionId} deleted.")]
    private partial void LogSessionDeleted(string sessionId);
}
