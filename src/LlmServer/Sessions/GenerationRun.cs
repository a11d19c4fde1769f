using System.Runtime.CompilerServices;
using LlmServer.Engine.Generation;
using LlmServer.Operations.Limits;

namespace LlmServer.Sessions;

/// <summary>
/// One generation of one session, owned by the <see cref="GenerationRegistry"/> rather than by any connection.
/// Every event goes into a replay buffer under a sequence number (1, 2, ...); listeners read the buffer from where
/// they are, so a resumed listener sees each event exactly once and in order. When the last listener leaves while
/// the generation runs, a grace timer starts; if nobody comes back in time, the generation is stopped. The run holds
/// the concurrent-generation permit of the call that started it until the engine is done with the generation.
/// </summary>
internal sealed class GenerationRun : IDisposable
{
    private readonly Lock _gate = new();
    private readonly List<ChatStreamEvent> _events = [];
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _resumeGrace;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private GenerationStream? _stream;
    private GenerationPermit? _permit;
    private ITimer? _graceTimer;
    private ITimer? _retentionTimer;
    private int _listeners;
    private bool _stopRequested;
    private bool _isFinished;

    public GenerationRun(string sessionId, TimeProvider timeProvider, TimeSpan resumeGrace)
    {
        SessionId = sessionId;
        _timeProvider = timeProvider;
        _resumeGrace = resumeGrace;
    }

    public string SessionId { get; }

    /// <summary>
    /// Completes once the assistant message is stored and the last event published, or once the run is abandoned
    /// (its turn was refused before it streamed): whoever waits to delete or stop the session never waits forever.
    /// </summary>
    public Task Finished => _finished.Task;

    /// <summary>
    /// Hands over the admitted engine stream and the caller's permit (null without a limit); a stop asked for before
    /// this point applies at once.
    /// </summary>
    public void Attach(GenerationStream stream, GenerationPermit? permit)
    {
        bool stop;
        lock (_gate)
        {
            _stream = stream;
            _permit = permit;
            stop = _stopRequested;
        }

        if (stop)
        {
            stream.Cancel();
        }
    }

    /// <summary>Asks the engine to stop; the run then ends with finish reason cancelled.</summary>
    public void Stop()
    {
        GenerationStream? stream;
        lock (_gate)
        {
            _stopRequested = true;
            stream = _stream;
        }

        stream?.Cancel();
    }

    /// <summary>The engine is done with the generation (finished, stopped, failed or abandoned): its permit goes back to the key, once.</summary>
    public void ReleasePermit() => Interlocked.Exchange(ref _permit, null)?.Dispose();

    /// <summary>Adds an event under the next sequence number and wakes the listeners.</summary>
    public void Publish(Func<long, ChatStreamEvent> create, bool final = false)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            if (_isFinished)
            {
                throw new InvalidOperationException("The generation has already ended.");
            }

            _events.Add(create(_events.Count + 1));
            _isFinished = final;
            if (final)
            {
                _graceTimer?.Dispose();
                _graceTimer = null;
            }

            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
        if (final)
        {
            _finished.TrySetResult();
        }
    }

    /// <summary>Ends a run that never streamed (its turn was refused); publishes nothing and completes <see cref="Finished"/>.</summary>
    public void Abandon()
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            _isFinished = true;
            changed = _changed;
        }

        changed.TrySetResult();
        _finished.TrySetResult();
    }

    /// <summary>
    /// Registers a listener that will read the events after <paramref name="afterSeq"/>, which no listener can have
    /// seen beyond the last event published so far.
    /// </summary>
    public GenerationSubscription Subscribe(long afterSeq)
    {
        lock (_gate)
        {
            if (afterSeq > _events.Count)
            {
                throw SessionException.Invalid(
                    "afterSeq",
                    $"afterSeq {afterSeq} is beyond the generation's last event so far ({_events.Count}); resume from the last seq received");
            }

            _listeners++;
            _graceTimer?.Dispose();
            _graceTimer = null;
        }

        return new GenerationSubscription(this, afterSeq);
    }

    /// <summary>Keeps the finished run for late resumes until <paramref name="expired"/> runs after the grace period.</summary>
    public void RetainFor(Action expired)
    {
        lock (_gate)
        {
            _retentionTimer?.Dispose();
            _retentionTimer = _timeProvider.CreateTimer(_ => expired(), null, _resumeGrace, Timeout.InfiniteTimeSpan);
        }
    }

    public void Dispose()
    {
        ReleasePermit();
        lock (_gate)
        {
            _graceTimer?.Dispose();
            _graceTimer = null;
            _retentionTimer?.Dispose();
            _retentionTimer = null;
        }
    }

    internal void Unsubscribe()
    {
        lock (_gate)
        {
            _listeners--;
            if (_listeners > 0 || _isFinished)
            {
                return;
            }

            _graceTimer?.Dispose();
            _graceTimer = _timeProvider.CreateTimer(_ => StopIfAbandoned(), null, _resumeGrace, Timeout.InfiniteTimeSpan);
        }
    }

    internal async IAsyncEnumerable<ChatStreamEvent> ReadAsync(long afterSeq, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var next = (int)Math.Clamp(afterSeq, 0, int.MaxValue);
        while (true)
        {
            ChatStreamEvent[] batch;
            bool finished;
            Task changed;
            lock (_gate)
            {
                batch = next < _events.Count ? _events.GetRange(next, _events.Count - next).ToArray() : [];
                finished = _isFinished;
                changed = _changed.Task;
            }

            foreach (var item in batch)
            {
                yield return item;
            }

            next += batch.Length;
            if (finished)
            {
                yield break;
            }

            await changed.WaitAsync(cancellationToken);
        }
    }

    private void StopIfAbandoned()
    {
        bool abandoned;
        lock (_gate)
        {
            abandoned = _listeners == 0 && !_isFinished;
        }

        if (abandoned)
        {
            Stop();
        }
    }
}

/// <summary>One listener of a <see cref="GenerationRun"/>; disposing it lets the run know the listener left.</summary>
internal sealed class GenerationSubscription : IAsyncDisposable
{
    private readonly GenerationRun _run;
    private readonly long _afterSeq;
    private int _disposed;

    public GenerationSubscription(GenerationRun run, long afterSeq)
    {
        _run = run;
        _afterSeq = afterSeq;
    }

    public string SessionId => _run.SessionId;

    /// <summary>The events after the subscription's starting point: replayed first, then live, until the last one.</summary>
    public IAsyncEnumerable<ChatStreamEvent> ReadAllAsync(CancellationToken cancellationToken) => _run.ReadAsync(_afterSeq, cancellationToken);

    public void StopGeneration() => _run.Stop();

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _run.Unsubscribe();
        }

        return ValueTask.CompletedTask;
    }
}
