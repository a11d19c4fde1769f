namespace LlmServer.Engine.Threading;

/// <summary>
/// Counts the callers using something native (a model) so that its owner frees it only after those under way have
/// left. A caller counts itself in before it reads whether the gate is closed, and the owner closes the gate before it
/// reads the count (both fenced): a caller either finds the gate closed and touches nothing, or the owner waits for it.
/// One interlocked operation each way and no lock, so every call on a hot path can pass it.
/// </summary>
internal sealed class UsageGate
{
    private readonly TaskCompletionSource _usersLeft = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _users;
    private volatile bool _closed;

    /// <summary>Counts the caller in unless the gate is closed; one let in calls <see cref="Exit"/> once it is done.</summary>
    public bool TryEnter()
    {
        Interlocked.Increment(ref _users);
        if (!_closed)
        {
            return true;
        }

        Exit();
        return false;
    }

    public void Exit()
    {
        // The last to leave after the close releases the owner.
        if (Interlocked.Decrement(ref _users) == 0 && _closed)
        {
            _usersLeft.TrySetResult();
        }
    }

    /// <summary>
    /// Lets no one in from now on and says how many callers are still inside (0: what the gate guards may go now);
    /// <see cref="WaitForUsers"/> blocks until they have left.
    /// </summary>
    public int Close()
    {
        _closed = true;

        // The close (a store) must be visible before the count is read: a caller that counts itself later sees it.
        Interlocked.MemoryBarrier();
        return Volatile.Read(ref _users);
    }

    /// <summary>Blocks, the gate closed, until no caller is inside. The calling thread must not be inside itself.</summary>
    public void WaitForUsers()
    {
        if (Volatile.Read(ref _users) > 0)
        {
            _usersLeft.Task.GetAwaiter().GetResult();
        }
    }
}
