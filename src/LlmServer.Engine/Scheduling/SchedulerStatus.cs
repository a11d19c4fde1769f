namespace LlmServer.Engine.Scheduling;

/// <summary>A snapshot of the scheduler, for metrics, health and <c>/props</c>.</summary>
public sealed record SchedulerStatus(
    int Slots,
    int SlotContextLength,
    int Running,
    int Waiting,
    int ResidentSessions,
    int KvTokensUsed,
    bool LoopAlive,
    DateTimeOffset? LastDecodeAt,
    long StepsCompleted)
{
    /// <summary>Batch-lane requests holding slots (counted in <see cref="Running"/> too).</summary>
    public int BatchRunning { get; init; }

    /// <summary>Batch-lane requests waiting for idle slots (counted in <see cref="Waiting"/> too).</summary>
    public int BatchWaiting { get; init; }

    /// <summary>When requests were last submitted to an idle scheduler (none in flight before them).</summary>
    public DateTimeOffset? BusySince { get; init; }

    /// <summary>
    /// How long requests have been in flight without a decode step ending: since the later of the last decode and
    /// <see cref="BusySince"/>. Null with nothing in flight.
    /// </summary>
    public TimeSpan? StalledFor(DateTimeOffset now)
    {
        if (Running + Waiting == 0)
        {
            return null;
        }

        // The later of the two, or the one there is (a comparison with a null is false).
        var since = LastDecodeAt > BusySince ? LastDecodeAt : BusySince ?? LastDecodeAt;
        return now - since;
    }

    /// <summary>KV cells idle slots keep for prefix reuse (finished requests, idle sessions); not in <see cref="KvTokensUsed"/>.</summary>
    public int KvTokensReusable { get; init; }

    /// <summary>KV cells held by running requests over all cells, 0 to 1 (as vLLM's usage: cached cells a new request may take are free).</summary>
    public double KvCacheUsage => ShareOfCells(KvTokensUsed);

    /// <summary>KV cells kept for prefix reuse over all cells, 0 to 1.</summary>
    public double KvCacheReusable => ShareOfCells(KvTokensReusable);

    private double ShareOfCells(int cells) => Slots == 0 || SlotContextLength == 0 ? 0 : (double)cells / ((long)Slots * SlotContextLength);
}
