using LlmServer.Engine.Threading;

namespace LlmServer.Engine.Tests.Threading;

/// <summary>The gate the scheduler's loop closes before it frees the model, against the callers using it.</summary>
public sealed class UsageGateTests
{
    /// <summary>How long a wait may take at most: a regression fails the test instead of hanging the run.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Closing_with_no_one_inside_frees_at_once()
    {
        var gate = new UsageGate();
        Assert.True(gate.TryEnter());
        gate.Exit();

        Assert.Equal(0, gate.Close());
        await Task.Run(gate.WaitForUsers).WaitAsync(Bound);
    }

    [Fact]
    public void A_caller_after_the_close_is_refused_and_not_left_counted()
    {
        var gate = new UsageGate();
        Assert.True(gate.TryEnter());
        Assert.Equal(1, gate.Close());

        Assert.False(gate.TryEnter());
        Assert.False(gate.TryEnter());

        // Close again only reads the count: the refused callers left it as it was.
        Assert.Equal(1, gate.Close());
        gate.Exit();
        Assert.Equal(0, gate.Close());
    }

    [Fact]
    public async Task The_wait_ends_when_the_last_caller_inside_leaves()
    {
        var gate = new UsageGate();
        Assert.True(gate.TryEnter());
        Assert.True(gate.TryEnter());
        Assert.Equal(2, gate.Close());

        var waiting = Task.Run(gate.WaitForUsers);
        gate.Exit();
        Assert.False(waiting.IsCompleted, "the wait ended with a caller still inside");

        gate.Exit();
        await waiting.WaitAsync(Bound);
        Assert.Equal(0, gate.Close());
    }
}
