namespace LlmServer.Engine.Threading;

/// <summary>
/// A task that completes on the next change, and is replaced by a new one at each: a waiter takes <see cref="Next"/>
/// before it reads the value that changes, so a change after that read always wakes it (no change is lost, nothing
/// polls).
/// </summary>
internal sealed class ChangeSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes at the next <see cref="Signal"/> after it was read.</summary>
    public Task Next => Volatile.Read(ref _next).Task;

    /// <summary>Wakes everyone waiting on <see cref="Next"/>; later readers wait for the following change.</summary>
    public void Signal() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
