using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

public sealed class SchedulerLogicTests
{
    [Fact]
    public async Task Waiting_requests_start_in_arrival_order_as_slots_free_up()
    {
        using var harness = new SchedulerHarness(slots: 1);
        var first = harness.Submit("aaa", maxTokens: 2);
        var second = harness.Submit("bbb", maxTokens: 2);
        var third = harness.Submit("ccc", maxTokens: 2);
        harness.RunToIdle();

        var prefillOrder = harness.Backend.Batches
            .Where(b => b.Count > 1)
            .Select(b => (char)b[0].Token)
            .ToList();
        Assert.Equal(['a', 'b', 'c'], prefillOrder);
        foreach (var stream in new[] { first, second, third })
        {
            var result = await stream.CollectAsync();
            Assert.Equal(2, result.Choices[0].Completion.Usage.CompletionTokens);
            Assert.Equal(FinishReason.Length, result.Choices[0].Completion.FinishReason);
        }

        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public void A_full_queue_refuses_at_once_with_overloaded()
    {
        using var harness = new SchedulerHarness(slots: 1, maxQueue: 1);
        harness.Submit("a");
        harness.Submit("b");
        var refused = Assert.Throws<GenerationException>(() => harness.Submit("c"));
        Assert.Equal(GenerationErrorCode.Overloaded, refused.Code);
        Assert.NotNull(refused.BackOff);
        Assert.Equal(2, harness.Scheduler.InFlight);
    }

    [Fact]
    public void Every_step_holds_generating_tokens_first_and_stays_within_the_budget()
    {
        using var harness = new SchedulerHarness(slots: 2, slotContext: 128, budget: 8);
        harness.Submit("ab", maxTokens: 20);
        harness.Scheduler.Step();
        harness.Scheduler.Step();
        harness.Submit(new string('x', 30), maxTokens: 2);
        harness.RunToIdle();

        foreach (var batch in harness.Backend.Batches)
        {
            Assert.InRange(batch.Count, 1, 8);
        }

        // While the long prompt is prefilled in chunks, the running stream gets its token in every step, first.
        var mixed = harness.Backend.Batches.Where(b => b.Any(e => e.Token == 'x')).ToList();
        Assert.True(mixed.Count >= 4, "a 30-token prompt in an 8-token budget takes several steps");
        foreach (var batch in mixed)
        {
            Assert.Equal(0, batch[0].Slot);
            Assert.True(batch[0].Logits);
            Assert.InRange(batch.Count(e => e.Slot == 1), 1, 7);
        }

        Assert.Equal(30, mixed.Sum(b => b.Count(e => e.Slot == 1)));
    }

    [Fact]
    public async Task Every_batch_lists_its_sequences_in_ascending_slot_order()
    {
        using var harness = new SchedulerHarness(slots: 3);
        await RunAsync(harness, "aaaa", "s1");
        await RunAsync(harness, "bbbb", "s2");
        await RunAsync(harness, "cccc", "s3");
        harness.Backend.Batches.Clear();

        // Arrival order s3, s1, s2 puts the running requests in slot order 2, 0, 1.
        var streams = new[] { harness.Submit("ccccXY", 6, "s3"), harness.Submit("aaaaXY", 6, "s1"), harness.Submit("bbbbXY", 6, "s2") };
        harness.RunToIdle();
        foreach (var stream in streams)
        {
            Assert.Equal(6, (await stream.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        }

        // llama.cpp splits a batch whose sequences are out of order into several micro-batches (up to 2x a step).
        Assert.All(harness.Backend.Batches, batch => Assert.Equal(batch.Select(e => e.Slot).Order(), batch.Select(e => e.Slot)));
        Assert.Contains(harness.Backend.Batches, batch => batch.Select(e => e.Slot).Distinct().Count() == 3);
    }

    [Fact]
    public async Task Cancelling_a_queued_request_removes_it_without_a_slot()
    {
        using var harness = new SchedulerHarness(slots: 1);
        using var cts = new CancellationTokenSource();
        var running = harness.Submit("aaa", maxTokens: 50);
        harness.Scheduler.Step();
        var queued = harness.Submit("BBB", maxTokens: 5, cancellationToken: cts.Token);
        await cts.CancelAsync();
        harness.Scheduler.Step();

        var result = await queued.CollectAsync();
        Assert.Equal(FinishReason.Cancelled, result.Choices[0].Completion.FinishReason);
        Assert.Equal(0, result.Choices[0].Completion.Usage.CompletionTokens);
        Assert.DoesNotContain(harness.Backend.Batches, b => b.Any(e => e.Token == 'B'));
        Assert.Equal(1, harness.Scheduler.InFlight);
        running.Cancel();
        harness.RunToIdle();
        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public async Task Cancelling_a_running_request_frees_its_slot_within_one_step(int stepsBeforeCancel)
    {
        using var harness = new SchedulerHarness(slots: 1, budget: 2);
        var stream = harness.Submit("abcdef", maxTokens: 50);
        for (var i = 0; i < stepsBeforeCancel; i++)
        {
            harness.Scheduler.Step();
        }

        stream.Cancel();
        harness.Scheduler.Step();
        Assert.Equal(0, harness.Scheduler.GetStatus().Running);
        Assert.Equal(0, harness.Scheduler.InFlight);
        var result = await stream.CollectAsync();
        Assert.Equal(FinishReason.Cancelled, result.Choices[0].Completion.FinishReason);

        var next = harness.Submit("zz", maxTokens: 1);
        harness.RunToIdle();
        Assert.Equal(FinishReason.Length, (await next.CollectAsync()).Choices[0].Completion.FinishReason);
    }

    [Fact]
    public async Task A_session_reuses_its_longest_common_prefix()
    {
        using var harness = new SchedulerHarness(slots: 2);
        var first = harness.Submit("abcdef", maxTokens: 3, session: "s1");
        harness.RunToIdle();
        var firstResult = await first.CollectAsync();
        Assert.Equal("ghi", firstResult.Choices[0].Text);
        Assert.Equal(0, firstResult.Choices[0].Completion.Usage.CachedPromptTokens);

        // The KV holds the prompt and the generated tokens that were decoded: g and h, not the last sampled i.
        Assert.Equal("abcdefgh", new string(harness.Backend.KvOf(0).Select(t => (char)t).ToArray()));
        var second = harness.Submit("abcdefghi XYZ", maxTokens: 1, session: "s1");
        harness.RunToIdle();
        var usage = (await second.CollectAsync()).Choices[0].Completion.Usage;
        Assert.Equal(13, usage.PromptTokens);
        Assert.Equal(8, usage.CachedPromptTokens);

        // An identical prompt still decodes its last token again, for the logits.
        var third = harness.Submit("abcdefghi XYZ", maxTokens: 1, session: "s1");
        harness.RunToIdle();
        Assert.Equal(12, (await third.CollectAsync()).Choices[0].Completion.Usage.CachedPromptTokens);
    }

    [Fact]
    public async Task Idle_sessions_are_evicted_least_recently_used()
    {
        using var harness = new SchedulerHarness(slots: 2);
        await RunAsync(harness, "aaaa", "s1");
        await RunAsync(harness, "bbbb", "s2");
        await RunAsync(harness, "bbbbXX", "s2");
        Assert.Equal(2, harness.Scheduler.GetStatus().ResidentSessions);

        // A third session needs a slot: s1 was used least recently, so it goes.
        await RunAsync(harness, "cccc", "s3");
        Assert.Equal(0, (await RunAsync(harness, "aaaaYY", "s1")).CachedPromptTokens);
        var s3 = await RunAsync(harness, "ccccZZ", "s3");
        Assert.True(s3.CachedPromptTokens >= 4, $"s3 should still be resident, cached {s3.CachedPromptTokens}");
    }

    [Fact]
    public async Task A_session_evicted_while_its_request_runs_is_not_kept_resident_when_it_finishes()
    {
        using var harness = new SchedulerHarness(slots: 1);
        var running = harness.Submit("abcd", maxTokens: 6, session: "s1");
        harness.Scheduler.Step();
        harness.Scheduler.EvictSession("s1");
        harness.RunToIdle();

        Assert.Equal(6, (await running.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        Assert.Equal(0, harness.Scheduler.GetStatus().ResidentSessions);
        Assert.Empty(harness.Backend.KvOf(0));
        Assert.Equal(0, (await RunAsync(harness, "abcdXY", "s1")).CachedPromptTokens);
    }

    [Fact]
    public async Task A_request_that_ends_in_an_idle_step_ends_after_the_status_that_step_left()
    {
        // One idle step evicts s1 and ends the cancelled request, which never got a slot. Its reader waits from
        // before the step, and reads the status once it has read the end.
        using var harness = new SchedulerHarness(slots: 1);
        await RunAsync(harness, "abcd", "s1");
        Assert.Equal(1, harness.Scheduler.GetStatus().ResidentSessions);
        var cancelled = harness.Submit("xy");
        var seen = StatusAtEndAsync(harness, cancelled);
        Assert.False(seen.IsCompleted);
        harness.Scheduler.EvictSession("s1");
        cancelled.Cancel();

        // The scheduler reads the slot size as it publishes a status: the first publication after the stream ended
        // finds the status that was current when it ended.
        SchedulerStatus? atEnd = null;
        harness.Backend.SlotContextSizeRead = () =>
        {
            if (cancelled.Ended.IsCompleted)
            {
                atEnd ??= harness.Scheduler.GetStatus();
            }
        };
        Assert.False(harness.Scheduler.Step());
        harness.Backend.SlotContextSizeRead = null;

        Assert.NotNull(atEnd);
        Assert.Equal(0, atEnd.ResidentSessions);
        Assert.Equal(0, atEnd.KvTokensReusable);
        var status = await seen;
        Assert.Equal(0, status.ResidentSessions);
        Assert.Equal(0, status.KvTokensReusable);
        Assert.Equal(0, status.Waiting);
    }

    [Fact]
    public async Task Evicting_a_session_frees_its_slot_and_cache()
    {
        using var harness = new SchedulerHarness(slots: 1);
        await RunAsync(harness, "abcd", "s1");
        harness.Scheduler.EvictSession("s1");
        harness.Scheduler.Step();
        Assert.Equal(0, harness.Scheduler.GetStatus().ResidentSessions);
        Assert.Empty(harness.Backend.KvOf(0));
        Assert.Equal(0, (await RunAsync(harness, "abcdXY", "s1")).CachedPromptTokens);
    }

    [Fact]
    public void A_prompt_longer_than_a_slot_fails_with_both_numbers()
    {
        using var harness = new SchedulerHarness(slots: 2, slotContext: 16);
        var error = Assert.Throws<GenerationException>(() => harness.Submit(new string('a', 20)));
        Assert.Equal(GenerationErrorCode.ContextLengthExceeded, error.Code);
        Assert.Equal(20, error.PromptTokens);
        Assert.Equal(16, error.ContextLength);
        Assert.Contains("20", error.Message, StringComparison.Ordinal);
        Assert.Contains("16", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public async Task Generation_that_reaches_the_end_of_the_slot_finishes_with_length()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 16);
        var stream = harness.Submit("abcdefghij", maxTokens: 100);
        harness.RunToIdle();
        var choice = (await stream.CollectAsync()).Choices[0];
        Assert.Equal(FinishReason.Length, choice.Completion.FinishReason);
        Assert.Equal(6, choice.Completion.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Stop_sequences_split_across_tokens_cut_the_text_and_are_never_emitted()
    {
        using var harness = new SchedulerHarness(slots: 1);
        var stream = harness.Submit("a", maxTokens: 20, stop: ["efg"]);
        harness.RunToIdle();
        var result = await stream.CollectAsync();
        Assert.Equal("bcd", result.Choices[0].Text);
        Assert.Equal(FinishReason.Stop, result.Choices[0].Completion.FinishReason);
    }

    [Fact]
    public async Task End_of_generation_finishes_with_stop()
    {
        using var harness = new SchedulerHarness(slots: 1);
        harness.Backend.Next = token => token == 'c' ? 0 : token + 1;
        var stream = harness.Submit("a", maxTokens: 20);
        harness.RunToIdle();
        var choice = (await stream.CollectAsync()).Choices[0];
        Assert.Equal("bc", choice.Text);
        Assert.Equal(FinishReason.Stop, choice.Completion.FinishReason);
    }

    [Fact]
    public async Task Text_held_for_a_possible_stop_sequence_stays_in_the_answer_when_the_model_ends_it()
    {
        // "bc" may begin the stop sequence "cx", so it is held back; then the model ends the answer.
        using var harness = new SchedulerHarness(slots: 1);
        harness.Backend.Next = token => token == 'c' ? 0 : token + 1;
        var stream = harness.Scheduler.Submit(
            new GenerationRequest { Prompt = "a", MaxTokens = 20, Stop = ["cx"], LogProbs = true },
            harness.Backend.Vocabulary.Tokenize("a", false, false),
            CancellationToken.None);
        harness.RunToIdle();
        var choice = (await stream.CollectAsync()).Choices[0];
        Assert.Equal("bc", choice.Text);
        Assert.Equal(FinishReason.Stop, choice.Completion.FinishReason);
        Assert.Null(choice.Completion.StopSequence);

        // The held tokens' log-probabilities come with their text, each once, in order.
        Assert.Equal(["b", "c"], choice.LogProbs!.Select(p => p.Token));
    }

    [Fact]
    public async Task At_a_stop_sequence_the_log_probabilities_end_with_the_answers_text()
    {
        // "d" writes the stop sequence's start: it goes with it, while "b" and "c" stay with the answer.
        using var harness = new SchedulerHarness(slots: 1);
        var stream = harness.Scheduler.Submit(
            new GenerationRequest { Prompt = "a", MaxTokens = 20, Stop = ["de"], LogProbs = true },
            harness.Backend.Vocabulary.Tokenize("a", false, false),
            CancellationToken.None);
        harness.RunToIdle();
        var choice = (await stream.CollectAsync()).Choices[0];
        Assert.Equal("bc", choice.Text);
        Assert.Equal("de", choice.Completion.StopSequence);
        Assert.Equal(["b", "c"], choice.LogProbs!.Select(p => p.Token));
    }

    [Fact]
    public async Task Extra_choices_fork_the_prompt_cache_instead_of_prefilling_again()
    {
        using var harness = new SchedulerHarness(slots: 3);
        var stream = harness.Submit("abcd", maxTokens: 3, choices: 3);
        harness.RunToIdle();
        var result = await stream.CollectAsync();
        Assert.Equal(3, result.Choices.Count);
        Assert.All(result.Choices, c => Assert.Equal("efg", c.Text));
        Assert.Equal(4, harness.Backend.Batches.Sum(b => b.Count(e => e.Token is >= 'a' and <= 'd' && e.Position < 4)));
        Assert.Equal([(0, 1), (0, 2)], harness.Backend.Copies.Select(c => (c.Source, c.Target)).Order().ToArray());
    }

    [Fact]
    public async Task A_failed_decode_fails_the_requests_in_it_and_the_loop_serves_the_next()
    {
        using var harness = new SchedulerHarness(slots: 1);
        harness.Backend.ForcedOutcomes.Enqueue(DecodeOutcome.Failed);
        var failed = harness.Submit("abc", maxTokens: 3);
        harness.RunToIdle();
        var completion = (await failed.CollectAsync()).Choices[0].Completion;
        Assert.Equal(FinishReason.Error, completion.FinishReason);
        Assert.NotNull(completion.Error);

        var next = harness.Submit("abc", maxTokens: 3);
        harness.RunToIdle();
        Assert.Equal("def", (await next.CollectAsync()).Choices[0].Text);
        Assert.True(harness.Scheduler.GetStatus().LoopAlive);
    }

    [Fact]
    public async Task No_kv_space_with_two_prompts_requeues_the_second_and_both_finish()
    {
        using var harness = new SchedulerHarness(slots: 2, budget: 32);
        harness.Backend.ForcedOutcomes.Enqueue(DecodeOutcome.NoKvSpace);
        var first = harness.Submit("abc", maxTokens: 2);
        var second = harness.Submit("klm", maxTokens: 2);
        harness.RunToIdle();
        Assert.Equal("de", (await first.CollectAsync()).Choices[0].Text);
        Assert.Equal("no", (await second.CollectAsync()).Choices[0].Text);
    }

    [Fact]
    public async Task An_exception_in_one_request_fails_that_request_only()
    {
        using var harness = new SchedulerHarness(slots: 2);
        var doomed = harness.Submit("abc", maxTokens: 5);
        harness.Backend.SamplerFailure = new InvalidOperationException("sampler broke");
        harness.Scheduler.Step();
        harness.Backend.SamplerFailure = null;
        var healthy = harness.Submit("abc", maxTokens: 2);
        harness.RunToIdle();
        var completion = (await doomed.CollectAsync()).Choices[0].Completion;
        Assert.Equal(FinishReason.Error, completion.FinishReason);
        Assert.Contains("sampler broke", completion.Error!.Message, StringComparison.Ordinal);
        Assert.Equal("de", (await healthy.CollectAsync()).Choices[0].Text);
    }

    [Fact]
    public void A_grammar_that_does_not_parse_is_refused_before_admission()
    {
        using var harness = new SchedulerHarness(slots: 1);
        var error = Assert.Throws<GenerationException>(() => harness.Scheduler.Submit(
            new GenerationRequest { Prompt = "a", Grammar = "invalid" }, [97], CancellationToken.None));
        Assert.Equal(GenerationErrorCode.InvalidRequest, error.Code);
        Assert.Equal(GenerationField.Grammar, error.Field);
        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public void Common_prefix_counts_matching_leading_tokens()
    {
        Assert.Equal(0, SlotTable.CommonPrefix([], [1, 2]));
        Assert.Equal(2, SlotTable.CommonPrefix([1, 2, 3], [1, 2, 4]));
        Assert.Equal(2, SlotTable.CommonPrefix([1, 2], [1, 2, 3]));
        Assert.Equal(2, SlotTable.CommonPrefix([1, 2, 3], [1, 2]));
    }

    private static async Task<SchedulerStatus> StatusAtEndAsync(SchedulerHarness harness, GenerationStream stream)
    {
        await foreach (var item in stream.ReadAllAsync())
        {
            Assert.Equal(FinishReason.Cancelled, Assert.IsType<GenerationCompleted>(item).FinishReason);
        }

        return harness.Scheduler.GetStatus();
    }

    private static async Task<GenerationUsage> RunAsync(SchedulerHarness harness, string prompt, string session)
    {
        var stream = harness.Submit(prompt, maxTokens: 2, session: session);
        harness.RunToIdle();
        return (await stream.CollectAsync()).Choices[0].Completion.Usage;
    }
}
