namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The batch lane's hysteresis: the slots interactive traffic held or waited for over its recent steps, so that a
/// slot it leaves for a moment between two of its requests is not handed to a batch request that the next interactive
/// arrival would preempt (losing its prefill). The window is learnt from the arrival pattern: every time interactive
/// demand falls and rises again, the gap in steps is kept (the last <see cref="GapHistory"/> of them); the window is
/// twice the longest recent gap plus one step, at most <see cref="SchedulerOptions.BatchHoldMaxSteps"/>. A gap longer
/// than that is a real lull, not a refill: it is not kept, and the batch lane gets the slot once it has lasted the
/// window.
/// </summary>
internal sealed class InteractiveDemandWindow
{
    private const int GapHistory = 16;

    private readonly int _maxHold;
    private readonly int[] _demand;
    private readonly int[] _gaps = new int[GapHistory];
    private int _gapCount;
    private int _nextGap;
    private long _step;
    private int _last;

    /// <summary>The step at which demand fell and has not risen since; -1 when none is open.</summary>
    private long _fellAt = -1;

    /// <param name="maxHold">Most steps a slot stays reserved after interactive demand left it; 0 turns the hold off.</param>
    public InteractiveDemandWindow(int maxHold)
    {
        _maxHold = maxHold;
        _demand = new int[Math.Max(1, maxHold)];
    }

    /// <summary>Steps over which the peak demand is reserved (1: only the current step's demand).</summary>
    public int HoldSteps
    {
        get
        {
            if (_maxHold == 0)
            {
                return 1;
            }

            var longest = 0;
            for (var i = 0; i < _gapCount; i++)
            {
                longest = Math.Max(longest, _gaps[i]);
            }

            return Math.Min(_maxHold, (2 * longest) + 1);
        }
    }

    /// <summary>
    /// Records one step's interactive demand (slots held by running interactive requests and needed by waiting ones)
    /// and returns the slots reserved for interactive traffic: the highest demand over the last <see cref="HoldSteps"/>
    /// steps, this one included.
    /// </summary>
    public int Observe(int demand)
    {
        _step++;
        if (demand < _last && _fellAt < 0)
        {
            _fellAt = _step;
        }
        else if (demand > _last && _fellAt >= 0)
        {
            RecordGap(_step - _fellAt);
        }

        if (_fellAt >= 0 && _step - _fellAt > _maxHold)
        {
            _fellAt = -1;
        }

        _last = demand;
        _demand[_step % _demand.Length] = demand;
        var hold = HoldSteps;
        var peak = demand;
        for (var back = 1; back < hold && back < _step; back++)
        {
            peak = Math.Max(peak, _demand[(_step - back) % _demand.Length]);
        }

        return peak;
    }

    private void RecordGap(long gap)
    {
        _fellAt = -1;
        if (gap > _maxHold)
        {
            return;
        }

        _gaps[_nextGap] = (int)gap;
        _nextGap = (_nextGap + 1) % GapHistory;
        _gapCount = Math.Min(_gapCount + 1, GapHistory);
    }
}
