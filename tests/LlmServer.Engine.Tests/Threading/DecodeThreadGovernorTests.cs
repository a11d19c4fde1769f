using LlmServer.Engine.Threading;

namespace LlmServer.Engine.Tests.Threading;

/// <summary>The governor sees only the times it is given: these tests feed it windows, never the clock.</summary>
public sealed class DecodeThreadGovernorTests
{
    // Windows of 100 units; a probe after 400 calm units, at most 1600 apart.
    private static readonly GovernorSettings Settings = new(100, 0.6, 0.85, 2, 400, 1600);

    private static bool Window(DecodeThreadGovernor governor, double share)
    {
        // Two decodes per window, as a loop would report them.
        var changed = governor.Observe(50, (long)(50 * share));
        return governor.Observe(50, (long)(50 * share)) || changed;
    }

    [Fact]
    public void A_calm_machine_keeps_every_thread()
    {
        var governor = new DecodeThreadGovernor(2, 2, Settings, competition: null, processors: 2);
        for (var i = 0; i < 50; i++)
        {
            Assert.False(Window(governor, 0.98));
        }

        Assert.Equal(2, governor.Threads);
        Assert.Equal(0, governor.Changes);
    }

    [Fact]
    public void One_contended_window_is_not_enough_two_in_a_row_drop_a_thread()
    {
        var governor = new DecodeThreadGovernor(2, 2, Settings, competition: null, processors: 2);

        Assert.False(Window(governor, 0.3));
        Assert.False(Window(governor, 0.95));
        Assert.False(Window(governor, 0.3));
        Assert.Equal(2, governor.Threads);

        Assert.True(Window(governor, 0.3));
        Assert.Equal(1, governor.Threads);
        Assert.Equal(0.3, governor.LastCpuShare, 2);
    }

    [Fact]
    public void After_a_calm_stretch_a_thread_comes_back_as_a_probe_and_stays_when_the_machine_is_calm()
    {
        var governor = new DecodeThreadGovernor(2, 2, Settings, competition: null, processors: 2);
        Window(governor, 0.3);
        Window(governor, 0.3);
        Assert.Equal(1, governor.Threads);

        for (var i = 0; i < 3; i++)
        {
            Assert.False(Window(governor, 0.99));
        }

        Assert.True(Window(governor, 0.99));
        Assert.Equal(2, governor.Threads);

        // The probe window is calm: the thread stays.
        Assert.False(Window(governor, 0.97));
        Assert.Equal(2, governor.Threads);
    }

    [Fact]
    public void A_failed_probe_drops_the_thread_at_once_and_doubles_the_wait_before_the_next()
    {
        var governor = new DecodeThreadGovernor(2, 2, Settings, competition: null, processors: 2);
        Window(governor, 0.3);
        Window(governor, 0.3);

        // 400 calm units, then the probe meets contention: back to one thread after one window.
        for (var i = 0; i < 4; i++)
        {
            Window(governor, 0.99);
        }

        Assert.Equal(2, governor.Threads);
        Assert.True(Window(governor, 0.4));
        Assert.Equal(1, governor.Threads);

        // The next probe waits 800 units.
        for (var i = 0; i < 7; i++)
        {
            Assert.False(Window(governor, 0.99));
        }

        Assert.True(Window(governor, 0.99));
        Assert.Equal(2, governor.Threads);
        Assert.Equal(4, governor.Changes);
    }

    [Fact]
    public void It_never_goes_below_one_thread_or_above_the_maximum()
    {
        var governor = new DecodeThreadGovernor(3, 3, Settings, competition: null, processors: 3);
        for (var i = 0; i < 20; i++)
        {
            Window(governor, 0.1);
        }

        Assert.Equal(1, governor.Threads);
        for (var i = 0; i < 200; i++)
        {
            Window(governor, 1.0);
        }

        Assert.Equal(3, governor.Threads);
    }

    [Fact]
    public void A_low_share_with_no_other_process_wanting_the_cores_keeps_every_thread()
    {
        // The server's own stream threads took the decoding thread's core for moments: no one else wants it.
        var others = new ScriptedCompetition(0.1);
        var governor = new DecodeThreadGovernor(2, 2, Settings, others, processors: 2);
        for (var i = 0; i < 10; i++)
        {
            Assert.False(Window(governor, 0.4));
        }

        Assert.Equal(2, governor.Threads);
        Assert.Equal(0.1, governor.LastOtherCores, 2);
    }

    [Fact]
    public void A_low_share_while_another_process_takes_a_core_drops_a_thread_and_probes_only_once_it_left()
    {
        var others = new ScriptedCompetition(1.0);
        var governor = new DecodeThreadGovernor(2, 2, Settings, others, processors: 2);
        Window(governor, 0.4);
        Assert.True(Window(governor, 0.4));
        Assert.Equal(1, governor.Threads);

        // One thread now has a core of its own: calm, but the busy process still holds the other core, so no probe.
        for (var i = 0; i < 20; i++)
        {
            Assert.False(Window(governor, 0.99));
        }

        Assert.Equal(1, governor.Threads);

        // The other process ends: the probe follows a full calm stretch, and holds.
        others.Cores = 0;
        for (var i = 0; i < 3; i++)
        {
            Assert.False(Window(governor, 0.99));
        }

        Assert.True(Window(governor, 0.99));
        Assert.False(Window(governor, 0.95));
        Assert.Equal(2, governor.Threads);
    }

    [Fact]
    public void On_a_machine_with_spare_cores_a_busy_neighbour_is_no_reason_to_drop_a_thread()
    {
        var governor = new DecodeThreadGovernor(2, 2, Settings, new ScriptedCompetition(1.0), processors: 4);
        for (var i = 0; i < 10; i++)
        {
            Assert.False(Window(governor, 0.5));
        }

        Assert.Equal(2, governor.Threads);
    }

    private sealed class ScriptedCompetition(double cores) : ICpuCompetition
    {
        public double Cores { get; set; } = cores;

        public double OtherCores() => Cores;
    }
}
