using System.Text;
using LlmServer.Engine.Generation;

namespace LlmServer.Sessions;

/// <summary>
/// Stores one answer as it streams, its text and a reasoning model's thinking apart: a checkpoint (finish reason
/// null) once <see cref="SessionOptions.CheckpointTokens"/> new tokens (of either) arrived or
/// <see cref="SessionOptions.CheckpointInterval"/> after the oldest unsaved one, whichever comes first, so a crash
/// loses at most that much; then the finished answer. At most one write is in flight; the final write waits for it,
/// so a checkpoint never overwrites the finished answer.
/// </summary>
internal sealed partial class AnswerRecorder : IDisposable
{
    private readonly ISessionStore _store;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly string? _owner;
    private readonly string _sessionId;
    private readonly int _index;
    private readonly int _contextStart;
    private readonly int _checkpointTokens;
    private readonly TimeSpan _checkpointInterval;
    private readonly Lock _gate = new();
    private readonly StringBuilder _text = new();
    private readonly StringBuilder _reasoning = new();
    private readonly ITimer _timer;
    private Task _write = Task.CompletedTask;
    private int _unsavedTokens;
    private bool _timerArmed;
    private bool _finished;

    public AnswerRecorder(
        ISessionStore store,
        SessionOptions options,
        TimeProvider timeProvider,
        ILogger logger,
        string? owner,
        string sessionId,
        int index,
        int contextStart)
    {
        _store = store;
        _timeProvider = timeProvider;
        _logger = logger;
        _owner = owner;
        _sessionId = sessionId;
        _index = index;
        _contextStart = contextStart;
        _checkpointTokens = options.CheckpointTokens;
        _checkpointInterval = options.CheckpointInterval;
        _timer = timeProvider.CreateTimer(_ => CheckpointNow(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Adds a token's text; starts a checkpoint when one is due.</summary>
    public void Append(string text) => Add(_text, text);

    /// <summary>Adds a token's text of the thinking; starts a checkpoint when one is due.</summary>
    public void AppendReasoning(string text) => Add(_reasoning, text);

    /// <summary>
    /// Stores the finished answer, with its usage. False when the session is gone; throws when the store fails.
    /// </summary>
    public async Task<bool> FinishAsync(GenerationCompleted? completed, CancellationToken cancellationToken)
    {
        Task pending;
        SessionMessage message;
        lock (_gate)
        {
            _finished = true;
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            pending = _write;
            var usage = completed?.Usage;
            message = Message(usage?.PromptTokens, usage?.CachedPromptTokens, usage?.CompletionTokens, (completed?.FinishReason ?? FinishReason.Error).ToName())
                with { ReasoningTokens = usage?.ReasoningTokens };
        }

        await pending;
        return await _store.SaveAnswerAsync(_owner, _sessionId, message, cancellationToken);
    }

    public void Dispose() => _timer.Dispose();

    private void Add(StringBuilder target, string text)
    {
        lock (_gate)
        {
            target.Append(text);
            _unsavedTokens++;
            if (_checkpointTokens > 0 && _unsavedTokens >= _checkpointTokens)
            {
                StartCheckpoint();
            }
            else if (!_timerArmed)
            {
                _timerArmed = true;
                _timer.Change(_checkpointInterval, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void CheckpointNow()
    {
        lock (_gate)
        {
            _timerArmed = false;
            if (_unsavedTokens > 0)
            {
                StartCheckpoint();
            }
        }
    }

    /// <summary>Under the lock: writes the text so far, unless the answer is finished or a write is in flight.</summary>
    private void StartCheckpoint()
    {
        if (_finished || !_write.IsCompleted)
        {
            // The in-flight write's end starts the next one when tokens are still unsaved (see WriteAsync).
            return;
        }

        _unsavedTokens = 0;
        _timerArmed = false;
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _write = WriteAsync(Message(null, null, null, null));
    }

    private async Task WriteAsync(SessionMessage checkpoint)
    {
        await Task.Yield();
        try
        {
            if (await _store.SaveAnswerAsync(_owner, _sessionId, checkpoint, CancellationToken.None))
            {
                LogCheckpointStored(_sessionId, checkpoint.Content.Length + (checkpoint.Reasoning?.Length ?? 0));
            }
        }
#pragma warning disable CA1031 // A failed checkpoint only widens what a crash could lose; the final write reports faults.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogCheckpointFailed(ex, _sessionId);
        }

        lock (_gate)
        {
            if (!_finished && _unsavedTokens > 0 && !_timerArmed)
            {
                _timerArmed = true;
                _timer.Change(_checkpointInterval, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private SessionMessage Message(int? promptTokens, int? cachedTokens, int? completionTokens, string? finishReason) => new(
        _index,
        "assistant",
        _text.ToString(),
        SessionTime.Now(_timeProvider),
        promptTokens,
        cachedTokens,
        completionTokens,
        finishReason,
        _contextStart,
        _reasoning.Length > 0 ? _reasoning.ToString() : null);

    [LoggerMessage(EventId = 4109, Level = LogLevel.Debug, Message = "Session {SessionId}: a checkpoint of the streaming answer is stored ({Characters} characters).")]
    private partial void LogCheckpointStored(string sessionId, int characters);

    [LoggerMessage(EventId = 4105, Level = LogLevel.Warning, Message = "Session {SessionId}: a checkpoint of the streaming answer could not be stored.")]
    private partial void LogCheckpointFailed(Exception exception, string sessionId);
}
