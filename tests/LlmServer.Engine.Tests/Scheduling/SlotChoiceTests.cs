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

    [Theory]
    [InlineData(300, 256, 300)]
    [InlineData(200, 256, 0)]
    [InlineData(200, 40, 200)]
    public void A_cached_prefix_is_taken_only_where_it_outweighs_starting_a_run(int prefix, int maxTokens, int cached)
    {
        using var harness = new SchedulerHarness(slots: 4, slotContext: 600, budget: 512, targetStepMs: 0);
        var longPrompt = new string('p', prefix);
        harness.Submit(longPrompt, maxTokens: 1);
        harness.Submit("xxxx", maxTokens: 1);
        harness.Submit("qqqq", maxTokens: 40);
        StepUntilBatchHolds(harness, [2]);

        // Slot 0 holds the prompt and would start a run of its own (slot 1 is free, 2 busy); slots 1 and 3 join
        // slot 2's run. The run costs 256 prompt tokens, or the request's own token limit if smaller.
        harness.Submit(longPrompt + "x", maxTokens: maxTokens);
        harness.Scheduler.Step();
        var prefilled = harness.Backend.Batches[^1].Count(entry => entry.Slot != 2);
        Assert.Equal(prefix + 1 - cached, prefilled);
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
