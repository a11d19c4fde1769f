using System.Threading.Tasks.Sources;

namespace LlmServer.Engine.Generation;

/// <summary>
/// The events of one request, from the scheduler thread (the only writer) to one reader. Writing never wakes the
/// reader: the scheduler wakes every reader that has something new once per step (<see cref="StreamPublisher"/>),
/// so a step costs one thread-pool hop however many streams it feeds, and a reader that is still busy with earlier
/// events finds all the step's events at once on its next read (its writer can merge them).
/// </summary>
internal sealed class GenerationEventQueue : IValueTaskSource<bool>
{
    private readonly Lock _lock = new();
    private readonly Queue<GenerationEvent> _items = new();
    private readonly StreamPublisher _publisher;

    // Asynchronous continuations: Complete runs on the scheduler thread, which must not run what waits on the end.
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = false };
    private bool _completed;
    private bool _readerWaiting;
    private bool _touched;

    public GenerationEventQueue(StreamPublisher publisher)
    {
        _publisher = publisher;
    }

    /// <summary>Completes once the scheduler has written the last event, however far the reader is behind.</summary>
    public Task Ended => _ended.Task;

    /// <summary>Adds an event (scheduler thread); the reader sees it once the step is published.</summary>
    public void Write(GenerationEvent item)
    {
        lock (_lock)
        {
            if (_completed)
            {
                return;
            }

            _items.Enqueue(item);
        }

        Touch();
    }

    /// <summary>No more events (scheduler thread); the reader ends after reading what is queued.</summary>
    public void Complete()
    {
        lock (_lock)
        {
            if (_completed)
            {
                return;
            }

            _completed = true;
        }

        _ended.TrySetResult();
        Touch();
    }

    public bool TryRead(out GenerationEvent item)
    {
        lock (_lock)
        {
            return _items.TryDequeue(out item!);
        }
    }

    /// <summary>True when an event can be read; false once the queue is complete and empty.</summary>
    public ValueTask<bool> WaitToReadAsync()
    {
        lock (_lock)
        {
            if (_items.Count > 0)
            {
                return new ValueTask<bool>(true);
            }

            if (_completed)
            {
                return new ValueTask<bool>(false);
            }

            _waiter.Reset();
            _readerWaiting = true;
            return new ValueTask<bool>(this, _waiter.Version);
        }
    }

    /// <summary>Called by the publisher: takes the waiting reader when there is something for it.</summary>
    internal bool TakeWaitingReader()
    {
        lock (_lock)
        {
            _touched = false;
            if (!_readerWaiting || (_items.Count == 0 && !_completed))
            {
                return false;
            }

            _readerWaiting = false;
            return true;
        }
    }

    /// <summary>Resumes the reader taken by <see cref="TakeWaitingReader"/>, on the calling thread.</summary>
    internal void WakeReader() => _waiter.SetResult(true);

    private void Touch()
    {
        bool first;
        lock (_lock)
        {
            first = !_touched;
            _touched = true;
        }

        if (first)
        {
            _publisher.Touched(this);
        }
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}

/// <summary>
/// Wakes, once per scheduler step, every reader whose queue got events in the step: one thread-pool work item
/// resumes them one after another (each runs until it waits again, normally after one write and one flush), so the
/// scheduler thread never runs a reader and a step never costs a hop per stream.
/// </summary>
internal sealed class StreamPublisher
{
    private readonly Lock _lock = new();
    private List<GenerationEventQueue> _touched = [];
    private List<GenerationEventQueue> _spare = [];

    internal void Touched(GenerationEventQueue queue)
    {
        lock (_lock)
        {
            _touched.Add(queue);
        }
    }

    /// <summary>Publishes what the step wrote (scheduler thread). Returns how many readers it woke.</summary>
    public int Publish()
    {
        List<GenerationEventQueue> touched;
        lock (_lock)
        {
            if (_touched.Count == 0)
            {
                return 0;
            }

            touched = _touched;
            _touched = _spare.Count == 0 ? [] : _spare;
            _spare = [];
        }

        GenerationEventQueue[]? readers = null;
        var count = 0;
        foreach (var queue in touched)
        {
            if (queue.TakeWaitingReader())
            {
                (readers ??= new GenerationEventQueue[touched.Count])[count++] = queue;
            }
        }

        touched.Clear();
        lock (_lock)
        {
            _spare = touched;
        }

        if (count > 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => WakeAll(state.Readers, state.Count), (Readers: readers!, Count: count), preferLocal: false);
        }

        return count;
    }

    private static void WakeAll(GenerationEventQueue[] readers, int count)
    {
        for (var i = 0; i < count; i++)
        {
            readers[i].WakeReader();
        }
    }
}
