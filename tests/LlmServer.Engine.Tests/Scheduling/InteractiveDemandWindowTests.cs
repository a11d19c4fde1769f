using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

public sealed class InteractiveDemandWindowTests
{
    [Fact]
    public void The_window_is_learnt_from_the_gaps_between_demand_falling_and_rising_again()
    {
        var window = new InteractiveDemandWindow(maxHold: 64);

        // Nothing seen yet: only the current step's demand is reserved.
        Assert.Equal([1, 1, 0, 0, 0], Observe(window, 1, 1, 0, 0, 0));
        Assert.Equal(1, window.HoldSteps);

        // Demand fell 3 steps before it came back: the window becomes 2 * 3 + 1 steps.
        Assert.Equal(1, window.Observe(1));
        Assert.Equal(7, window.HoldSteps);

        // Now a fall keeps the peak reserved for the 6 steps after the last step with demand.
        Assert.Equal([1, 1, 1, 1, 1, 1, 0], Observe(window, 0, 0, 0, 0, 0, 0, 0));
    }

    [Fact]
    public void A_lull_longer_than_the_limit_is_no_gap_and_the_longest_recent_gap_sets_the_window()
    {
        var window = new InteractiveDemandWindow(maxHold: 8);
        Observe(window, 2, 1, 1, 2);
        Assert.Equal(5, window.HoldSteps);
        Observe(window, 1, 2);
        Assert.Equal(5, window.HoldSteps);

        // 9 steps at the lower demand: past the limit, not kept as a gap.
        Observe(window, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2);
        Assert.Equal(5, window.HoldSteps);

        // A 4-step gap within the limit: 9 steps, capped at 8.
        Observe(window, 0, 0, 0, 0, 2);
        Assert.Equal(8, window.HoldSteps);
    }

    [Fact]
    public void A_limit_of_zero_reserves_only_the_current_demand()
    {
        var window = new InteractiveDemandWindow(maxHold: 0);
        Assert.Equal([2, 0, 1, 0, 2, 0], Observe(window, 2, 0, 1, 0, 2, 0));
        Assert.Equal(1, window.HoldSteps);
    }

    private static int[] Observe(InteractiveDemandWindow window, params int[] demand) => [.. demand.Select(window.Observe)];
}
