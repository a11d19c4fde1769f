using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// Prompt chunks sized by time, on a fake backend whose decode costs a scripted time per token (prompts are upper
/// case letters, generated tokens lower case), so every figure below is exact.
/// </summary>
public sealed class StepBudgetTests
{
    private const int StepOverheadMs = 2;
    private const int GenerationTokenMs = 1;
    private const int PromptTokenMs = 4;

    [Fact]
    public async Task Prompt_chunks_follow_the_time_target_while_streams_generate()
    {
        using var harness = Timed(slots: 3, targetStepMs: 50, minPromptChunk: 4);
        var running = new[] { harness.Submit("AB", maxTokens: 200), harness.Submit("CD", maxTokens: 200) };
        harness.Steps(5);

        var longPrompt = harness.Submit(new string('X', 300), maxTokens: 1);
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'X', 300);

        var mixed = harness.Backend.Batches.Where(b => b.Any(e => e.Token == 'X')).ToList();
        Assert.Equal(300, mixed.Sum(b => b.Count(e => e.Token == 'X')));

        // Every step stays within the target, and the running streams get their token in each one.
        Assert.All(mixed, batch => Assert.InRange(CostMs(batch), 0, 50));
        Assert.All(mixed, batch => Assert.Equal(2, batch.Count(e => char.IsLower((char)e.Token))));

        // Once the estimate has settled, chunks fill the target: (50 - 2 - 2 * 1) / 4 = 11 tokens.
        var settled = mixed.Skip(10).SkipLast(1).Select(b => b.Count(e => e.Token == 'X')).ToList();
        Assert.NotEmpty(settled);
        Assert.All(settled, count => Assert.Equal(11, count));
        foreach (var stream in running)
        {
            stream.Cancel();
        }

        harness.RunToIdle();
        Assert.Equal(1, (await longPrompt.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
    }

    [Fact]
    public void A_long_prompt_advances_by_the_minimal_chunk_when_the_target_leaves_no_room()
    {
        using var harness = Timed(slots: 2, targetStepMs: 3, minPromptChunk: 6);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        harness.Submit(new string('X', 40), maxTokens: 1);
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'X', 40);

        var chunks = harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'X')).Where(c => c > 0).ToList();
        Assert.Equal([6, 6, 6, 6, 6, 6, 4], chunks);
        running.Cancel();
        harness.RunToIdle();
    }

    [Fact]
    public async Task Every_prompt_in_progress_advances_by_a_minimal_chunk_when_the_target_leaves_no_room()
    {
        using var harness = Timed(slots: 3, targetStepMs: 3, minPromptChunk: 6);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        var longPrompt = harness.Submit(new string('X', 40), maxTokens: 1);
        var shortPrompt = harness.Submit("YYYY", maxTokens: 1);
        harness.Backend.Batches.Clear();
        harness.Scheduler.Step();

        // The short prompt behind the long one is not kept waiting for it: both advance in the same step.
        Assert.Equal(6, harness.Backend.Batches[0].Count(e => e.Token == 'X'));
        Assert.Equal(4, harness.Backend.Batches[0].Count(e => e.Token == 'Y'));
        harness.Scheduler.Step();
        Assert.Equal(1, (await shortPrompt.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        Assert.False(longPrompt.IsCompleted);
        running.Cancel();
        harness.RunToIdle();
    }

    [Fact]
    public async Task Long_prompts_are_prefilled_one_after_another_while_a_short_one_goes_beside_them()
    {
        using var harness = Timed(slots: 4, targetStepMs: 3, minPromptChunk: 6, configure: o => o.LongPromptTokens = 20);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        var first = harness.Submit(new string('X', 40), maxTokens: 1);
        var second = harness.Submit(new string('Z', 30), maxTokens: 1);
        var shortPrompt = harness.Submit("YYYY", maxTokens: 1);
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'X', 40);

        // One long chunk a step: the second long prompt waits until the first is prefilled, while the
        // short prompt behind both goes into the first step.
        var whileFirst = harness.Backend.Batches.ToList();
        Assert.Equal([6, 6, 6, 6, 6, 6, 4], whileFirst.Select(b => b.Count(e => e.Token == 'X')));
        Assert.All(whileFirst, b => Assert.DoesNotContain(b, e => e.Token == 'Z'));
        Assert.Equal(4, whileFirst[0].Count(e => e.Token == 'Y'));

        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'Z', 30);
        Assert.Equal([6, 6, 6, 6, 6], harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'Z')));

        // The running stream decoded a token in every step throughout.
        Assert.All(whileFirst.Concat(harness.Backend.Batches), b => Assert.Single(b, e => char.IsLower((char)e.Token)));
        running.Cancel();
        harness.RunToIdle();
        foreach (var request in new[] { first, second, shortPrompt })
        {
            Assert.Equal(1, (await request.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        }
    }

    [Fact]
    public void A_long_prompt_requeued_after_a_failed_decode_keeps_its_turn()
    {
        using var harness = Timed(slots: 4, targetStepMs: 3, minPromptChunk: 6, configure: o => o.LongPromptTokens = 20);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        harness.Submit("YYYY", maxTokens: 1);
        harness.Backend.Clock.Advance(TimeSpan.FromMilliseconds(1));
        harness.Submit(new string('X', 40), maxTokens: 1);
        harness.Backend.Clock.Advance(TimeSpan.FromMilliseconds(1));
        harness.Submit(new string('Z', 30), maxTokens: 1);
        harness.Backend.Batches.Clear();

        // No KV space for the step: the short prompt's chunk keeps its place, the long one gives its slot back and is
        // admitted again, behind the later long prompt. It still goes first.
        harness.Backend.ForcedOutcomes.Enqueue(DecodeOutcome.NoKvSpace);
        harness.Scheduler.Step();
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'X', 40);

        Assert.All(harness.Backend.Batches, b => Assert.DoesNotContain(b, e => e.Token == 'Z'));
        running.Cancel();
        harness.RunToIdle();
    }

    [Fact]
    public void With_room_for_two_long_prompts_both_advance_every_step()
    {
        using var harness = Timed(slots: 4, targetStepMs: 3, minPromptChunk: 6, configure: o => (o.LongPromptTokens, o.MaxLongPrefills) = (20, 2));
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        harness.Submit(new string('X', 40), maxTokens: 1);
        harness.Submit(new string('Z', 30), maxTokens: 1);
        harness.Backend.Batches.Clear();
        harness.Scheduler.Step();

        Assert.Equal(6, harness.Backend.Batches[0].Count(e => e.Token == 'X'));
        Assert.Equal(6, harness.Backend.Batches[0].Count(e => e.Token == 'Z'));
        running.Cancel();
        harness.RunToIdle();
    }

    [Fact]
    public void A_waiting_long_prompt_takes_the_room_the_time_target_leaves()
    {
        using var harness = Timed(slots: 4, targetStepMs: 80, minPromptChunk: 4, configure: o => o.LongPromptTokens = 20);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        harness.Submit(new string('X', 30), maxTokens: 1);
        harness.Submit(new string('Z', 100), maxTokens: 1);
        harness.Backend.Batches.Clear();
        harness.Steps(4);

        // The estimate (learnt from the running stream's prompt, then from these chunks) fits 15 prompt tokens in the
        // first step, then 19: the oldest long prompt takes them, and where it needs fewer, the second takes the rest.
        Assert.Equal([15, 15, 0, 0], harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'X')));
        Assert.Equal([0, 4, 19, 19], harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'Z')));
        running.Cancel();
        harness.RunToIdle();
    }

    [Fact]
    public async Task With_nothing_generating_a_short_prompt_behind_a_long_one_goes_into_the_same_step()
    {
        using var harness = Timed(slots: 2, budget: 64, targetStepMs: 10, minPromptChunk: 8);
        var longPrompt = harness.Submit(new string('X', 200), maxTokens: 1);
        var shortPrompt = harness.Submit("YYYYY", maxTokens: 1);
        harness.Scheduler.Step();

        // The full budget is used: the long prompt's chunk, then the whole short prompt.
        Assert.Equal(59, harness.Backend.Batches[0].Count(e => e.Token == 'X'));
        Assert.Equal(5, harness.Backend.Batches[0].Count(e => e.Token == 'Y'));
        harness.Scheduler.Step();
        Assert.Equal(1, (await shortPrompt.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        Assert.False(longPrompt.IsCompleted);
        harness.RunToIdle();
    }

    [Fact]
    public void With_nothing_generating_a_prompt_fills_the_whole_token_budget()
    {
        using var harness = Timed(slots: 2, budget: 64, targetStepMs: 10, minPromptChunk: 4);
        harness.Submit(new string('X', 200), maxTokens: 1);
        harness.RunToIdle();
        var chunks = harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'X')).Where(c => c > 0).ToList();
        Assert.Equal([64, 64, 64, 8], chunks);
    }

    [Fact]
    public async Task Prompts_advance_in_arrival_order_each_by_a_minimal_chunk_first()
    {
        using var harness = Timed(slots: 3, targetStepMs: 80, minPromptChunk: 8);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        var longPrompt = harness.Submit(new string('X', 100), maxTokens: 1);
        var shortPrompt = harness.Submit("YYYYY", maxTokens: 1);
        harness.Backend.Batches.Clear();
        harness.Scheduler.Step();

        // The step holds the oldest prompt's minimal chunk, then the whole short prompt: it answers after one step.
        var first = harness.Backend.Batches[0];
        Assert.Equal(5, first.Count(e => e.Token == 'Y'));
        Assert.True(first.Count(e => e.Token == 'X') >= 8);
        harness.Scheduler.Step();
        var shortResult = await shortPrompt.CollectAsync();
        Assert.Equal(1, shortResult.Choices[0].Completion.Usage.CompletionTokens);
        Assert.False(longPrompt.IsCompleted);

        running.Cancel();
        harness.RunToIdle();
        Assert.Equal(1, (await longPrompt.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
    }

    [Fact]
    public void Without_a_time_target_prompt_chunks_fill_the_token_budget_in_arrival_order()
    {
        using var harness = Timed(slots: 3, budget: 32, targetStepMs: 0, minPromptChunk: 4);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Scheduler.Step();
        harness.Submit(new string('X', 40), maxTokens: 1);
        harness.Submit("YYYYY", maxTokens: 1);
        harness.Backend.Batches.Clear();
        harness.Scheduler.Step();
        harness.Scheduler.Step();

        Assert.Equal(31, harness.Backend.Batches[0].Count(e => e.Token == 'X'));
        Assert.Equal(0, harness.Backend.Batches[0].Count(e => e.Token == 'Y'));
        Assert.Equal(9, harness.Backend.Batches[1].Count(e => e.Token == 'X'));
        Assert.Equal(5, harness.Backend.Batches[1].Count(e => e.Token == 'Y'));
        running.Cancel();
        harness.RunToIdle();
    }

    [Fact]
    public void The_validator_reports_bad_time_settings()
    {
        var result = new SchedulerOptionsValidator().Validate(
            null, new SchedulerOptions { TargetStepMs = -1, MinPromptChunk = 0, MaxLongPrefills = 0, LongPromptTokens = 0 });
        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.Contains("TargetStepMs", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("MinPromptChunk", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("MaxLongPrefills", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("LongPromptTokens", StringComparison.Ordinal));
        Assert.True(new SchedulerOptionsValidator().Validate(null, new SchedulerOptions()).Succeeded);

        // A small token budget with the default minimal chunk is valid: the budget caps every chunk.
        Assert.True(new SchedulerOptionsValidator().Validate(null, new SchedulerOptions { Slots = 4, StepTokenBudget = 32 }).Succeeded);
    }

    [Theory]
    [InlineData(0.6, 62)]
    [InlineData(0.0, 4)]
    public async Task Where_a_chunk_has_a_fixed_cost_prompt_chunks_keep_their_share_of_the_step(double minPromptShare, int settledChunk)
    {
        // Each micro-batch costs 40 ms, whatever its tokens (the weights' pass), the generating sequences' and the
        // prompt chunk's: a step carrying prompt tokens costs 40 ms more, plus 2 ms a token (a small chunk deep in a
        // long prompt on a CPU), and the two streams leave no room in the 50 ms target.
        using var harness = Timed(slots: 3, targetStepMs: 50, minPromptChunk: 4, minPromptShare: minPromptShare, slotContext: 4096);
        harness.Backend.StepTime = FixedPromptCost;
        var running = new[] { harness.Submit(new string('P', 100), maxTokens: 1000), harness.Submit("AB", maxTokens: 1000) };
        harness.Steps(5);

        // Long enough that the chunk sizes' spread fades from the fit's memory: the line fitted stands.
        var longPrompt = harness.Submit(new string('X', 2000), maxTokens: 1);
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'X', 2000);

        // Settled (the fit has seen two chunk sizes), a chunk is the fewest tokens whose own 2 ms each are 60% of the
        // step: (40 + 2 * 1 + 40) * 0.6 / 0.4 / 2 = 61.5, so 62. Without a share, the minimal chunk: steps keep nearest the target.
        var chunks = harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'X')).Where(c => c > 0).ToList();
        var settled = chunks.Skip(2).SkipLast(1).ToList();
        Assert.NotEmpty(settled);
        Assert.All(settled, count => Assert.Equal(settledChunk, count));
        Assert.All(
            harness.Backend.Batches.Where(b => b.Any(e => e.Token == 'X')),
            batch => Assert.Equal(2, batch.Count(e => char.IsLower((char)e.Token))));
        foreach (var stream in running)
        {
            stream.Cancel();
        }

        harness.RunToIdle();
        Assert.Equal(1, (await longPrompt.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Deep_in_a_long_prompt_chunks_shrink_so_that_steps_keep_to_the_target()
    {
        // A prompt token costs 1 ms plus 1 ms for every 200 positions it attends over (attention grows with depth):
        // 11 ms 2,000 tokens deep. Beside two streams, 50 tokens fit the 60 ms target at the start, 5 at the end.
        using var harness = Timed(slots: 3, targetStepMs: 60, minPromptChunk: 2, minPromptShare: 0, slotContext: 4096);
        harness.Backend.StepTime = batch => TimeSpan.FromMilliseconds(DeepCostMs(batch));
        var running = new[] { harness.Submit("AB", maxTokens: 3000), harness.Submit("CD", maxTokens: 3000) };
        harness.Steps(5);

        var longPrompt = harness.Submit(new string('X', 2000), maxTokens: 1);
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'X', 2000);

        // Once the first steps have taught the fit its parts, every step keeps to the target, shallow or deep (a
        // depth-blind line, fitted on the recent shallower chunks, sizes deep ones too large), and the streams decode
        // in each. Within 0.1 ms: the streams' own prompts, prefilled with nothing generating, counted the step's
        // overhead as prompt time, and their fading weight leaves the fit a few hundredths of a millisecond off.
        var mixed = harness.Backend.Batches.Where(b => b.Any(e => e.Token == 'X')).ToList();
        var settled = mixed.Skip(8).ToList();
        Assert.All(settled, batch => Assert.InRange(DeepCostMs(batch), 0, 60.1));
        Assert.All(mixed, batch => Assert.Equal(2, batch.Count(e => char.IsLower((char)e.Token))));

        // And they fill it: each settled step but the last is within one deep token of the target.
        Assert.All(settled.SkipLast(1), batch => Assert.InRange(DeepCostMs(batch), 60 - 11, 60.1));
        var chunks = settled.Select(b => b.Count(e => e.Token == 'X')).ToList();
        // About 260 deep a token costs 2.3 ms and 23 fit; 1,990 deep, 11 ms and 5.
        Assert.InRange(chunks[0], 20, 25);
        Assert.InRange(chunks[^2], 4, 5);
        foreach (var stream in running)
        {
            stream.Cancel();
        }

        harness.RunToIdle();
        Assert.Equal(1, (await longPrompt.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Batch_prompts_keep_to_the_time_target_even_with_nothing_generating()
    {
        using var harness = Timed(slots: 3, targetStepMs: 50, minPromptChunk: 4, minPromptShare: 0.5);
        harness.Backend.StepTime = FixedPromptCost;

        // An interactive prompt with nothing generating takes the whole budget in one step (and teaches the costs).
        var interactive = harness.Submit(new string('P', 100), maxTokens: 2);
        harness.RunToIdle();
        Assert.Equal(100, harness.Backend.Batches[0].Count(e => e.Token == 'P'));

        var batch = harness.Submit(new string('K', 200), maxTokens: 1, priority: RequestPriority.Batch);
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'K', 200);

        // Nothing generates, yet a batch step fits the 50 ms target once the fit has two chunk sizes: (50 - 40) / 2.
        var chunks = harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'K')).ToList();
        Assert.All(chunks.Skip(1), count => Assert.InRange(count, 1, 5));
        Assert.Equal(2, (await interactive.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        harness.RunToIdle();
        Assert.Equal(1, (await batch.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Batch_prompts_admitted_together_share_one_minimal_chunk_a_step_when_the_target_leaves_no_room()
    {
        using var harness = Timed(slots: 4, targetStepMs: 3, minPromptChunk: 6);
        var running = harness.Submit("AB", maxTokens: 200);
        harness.Steps(3);

        var batch = Enumerable.Range(0, 3).Select(_ => harness.Submit(new string('K', 12), maxTokens: 1, priority: RequestPriority.Batch)).ToList();
        harness.Backend.Batches.Clear();
        StepUntilPrefilled(harness, 'K', 36);

        // One 6-token chunk a step, in arrival order (the first batch prompt, then the second, then the third), where
        // three minimal chunks would each lengthen every step; the interactive stream decodes in every one.
        var chunks = harness.Backend.Batches.Select(b => b.Count(e => e.Token == 'K')).Where(c => c > 0).ToList();
        Assert.Equal([6, 6, 6, 6, 6, 6], chunks);
        Assert.All(harness.Backend.Batches, b => Assert.Contains(b, e => char.IsLower((char)e.Token)));
        running.Cancel();
        harness.RunToIdle();
        foreach (var request in batch)
        {
            Assert.Equal(1, (await request.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        }
    }

    private static TimeSpan FixedPromptCost(IReadOnlyList<FakeBackend.BatchEntry> batch)
    {
        var prompt = batch.Count(e => char.IsUpper((char)e.Token));
        var generating = batch.Count(e => char.IsLower((char)e.Token));
        return TimeSpan.FromMilliseconds((generating > 0 ? 40 + generating : 0) + (prompt > 0 ? 40 + (2 * prompt) : 0));
    }

    private static void StepUntilPrefilled(SchedulerHarness harness, char promptToken, int length)
    {
        var steps = 0;
        while (harness.Backend.Batches.Sum(b => b.Count(e => e.Token == promptToken)) < length)
        {
            Assert.True(harness.Scheduler.Step(), "the scheduler went idle before the prompt was prefilled");
            Assert.True(++steps < 1000, "the long prompt stopped advancing");
        }
    }

    private static SchedulerHarness Timed(
        int slots, int targetStepMs, int minPromptChunk, int budget = 512, double? minPromptShare = null, int slotContext = 512, Action<SchedulerOptions>? configure = null)
    {
        var harness = new SchedulerHarness(
            slots: slots, slotContext: slotContext, budget: budget, targetStepMs: targetStepMs, minPromptChunk: minPromptChunk, minPromptShare: minPromptShare, configure: configure);
        harness.Backend.StepTime = batch => TimeSpan.FromMilliseconds(CostMs(batch));
        return harness;
    }

    private static double DeepCostMs(IReadOnlyList<FakeBackend.BatchEntry> batch) =>
        StepOverheadMs + batch.Sum(e => char.IsUpper((char)e.Token) ? 1 + (e.Position / 200.0) : GenerationTokenMs);

    private static int CostMs(IReadOnlyList<FakeBackend.BatchEntry> batch) =>
        StepOverheadMs + batch.Sum(e => char.IsUpper((char)e.Token) ? PromptTokenMs : GenerationTokenMs);
}
