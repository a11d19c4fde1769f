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

    /// <summary>Used KV cells over all cells, 0 to 1.</summary>
    public double KvCacheUsage => Slots == 0 || SlotContextLength == 0 ? 0 : (double)KvTokensUsed / ((long)Slots * SlotContextLength);
}
