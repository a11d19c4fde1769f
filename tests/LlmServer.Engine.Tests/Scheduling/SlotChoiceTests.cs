namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// Which free slot a request takes: with the KV cache split per sequence, llama.cpp decodes each run of consecutive
/// busy slots as a pass of its own, so a new request joins the busy run unless a long cached prefix elsewhere
/// outweighs that.
/// </summary>
public sealed class SlotChoiceTests
{
    [Fact]
    public void New_requests_fill_the_gaps_beside_busy_slots_so_each_step_decodes_one_run()
    {
        using var harness = new SchedulerHarness(slots: 8);
        harness.Submit("aaaa", maxTokens: 2);
        harness.Submit("bbbb", maxTokens: 40);
        harness.Submit("cccc", maxTokens: 2);
        harness.Submit("dddd", maxTokens: 40);

        // Slots 0 and 2 finish and are free again, beside the busy 1 and 3; slots 4 to 7 were never used (least
        // recently used, which alone would pick them).
        StepUntilBatchHolds(harness, [1, 3]);
        harness.Submit("eeee", maxTokens: 40);
        harness.Submit("ffff", maxTokens: 40);
        harness.Steps(2);

        var slots = SlotsOf(harness.Backend.Batches[^1]);
        Assert.Equal(4, slots.Count);
        Assert.Equal(Enumerable.Range(slots[0], 4), slots);
    }

    [Fact]
    public async Task A_cached_prefix_longer_than_a_runs_cost_outweighs_keeping_the_busy_slots_together()
    {
        using var harness = new SchedulerHarness(slots: 4, slotContext: 400, budget: 512);
        var longPrompt = new string('p', 300);
        harness.Submit(longPrompt, maxTokens: 1);
        harness.Submit("qqqq", maxTokens: 40);
        StepUntilBatchHolds(harness, [1]);

        // Slot 0 holds the long prompt; slot 1 is busy. Slot 2 would keep the run whole, but slot 0 saves 300 tokens.
        var again = harness.Submit(longPrompt + "x", maxTokens: 1);
        harness.Scheduler.Step();
        StepUntilBatchHolds(harness, [1]);
        Assert.Equal(300, (await again.CollectAsync()).Choices[0].Completion.Usage.CachedPromptTokens);
    }

    /// <summary>Steps until a step decodes exactly these slots (the others finished or have not started).</summary>
    private static void StepUntilBatchHolds(SchedulerHarness harness, List<int> slots)
    {
        for (var steps = 0; harness.Backend.Batches.Count == 0 || !SlotsOf(harness.Backend.Batches[^1]).SequenceEqual(slots); steps++)
        {
            Assert.True(steps < 1000, "no step decoded exactly slots " + string.Join(", ", slots));
            harness.Scheduler.Step();
        }
    }

    private static List<int> SlotsOf(IReadOnlyList<FakeBackend.BatchEntry> batch) =>
        [.. batch.Select(entry => entry.Slot).Distinct().Order()];
}
