using System.Diagnostics.Metrics;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>The batch lane: batch requests fill idle slots and give them back to interactive traffic.</summary>
public sealed class BatchLaneTests
{
    private const RequestPriority Batch = RequestPriority.Batch;

    [Fact]
    public async Task A_batch_request_takes_a_slot_that_interactive_traffic_leaves_idle()
    {
        using var harness = new SchedulerHarness(slots: 2);
        var interactive = harness.Submit("aaa", maxTokens: 10);
        var batch = harness.Submit("kkk", maxTokens: 3, priority: Batch);
        harness.Scheduler.Step();
        harness.Scheduler.Step();

        // Both are admitted at once, one slot each; the batch prompt goes in once the interactive one is in.
        Assert.Equal([0], harness.Backend.Batches[0].Select(e => e.Slot).Distinct());
        Assert.Contains(1, harness.Backend.Batches[1].Select(e => e.Slot));
        harness.RunToIdle();
        Assert.Equal("lmn", (await batch.CollectAsync()).Choices[0].Text);
        Assert.Equal(10, (await interactive.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
    }

    [Fact]
    public async Task An_interactive_request_is_admitted_before_a_batch_request_that_came_first()
    {
        using var harness = new SchedulerHarness(slots: 1);
        var running = harness.Submit("aaa", maxTokens: 2);
        harness.Scheduler.Step();
        var batch = harness.Submit("kkk", maxTokens: 2, priority: Batch);
        var interactive = harness.Submit("xxx", maxTokens: 2);
        harness.RunToIdle();

        var prefillOrder = harness.Backend.Batches.Where(b => b.Count > 1).Select(b => (char)b[0].Token).ToList();
        Assert.Equal(['a', 'x', 'k'], prefillOrder);
        foreach (var stream in new[] { running, batch, interactive })
        {
            Assert.Equal(FinishReason.Length, (await stream.CollectAsync()).Choices[0].Completion.FinishReason);
        }
    }

    [Fact]
    public async Task An_interactive_request_preempts_a_running_batch_request_in_the_same_step_and_the_batch_request_continues()
    {
        using var harness = new SchedulerHarness(slots: 1, slotContext: 64);
        var alone = harness.Submit("abc", maxTokens: 12, priority: Batch);
        harness.RunToIdle();
        var expected = (await alone.CollectAsync()).Choices[0].Text;
        harness.Backend.Batches.Clear();

        var batch = harness.Submit("abc", maxTokens: 12, priority: Batch);
        harness.Steps(5);

        Assert.Equal(1, harness.Scheduler.GetStatus().BatchRunning);
        var interactive = harness.Submit("XYZ", maxTokens: 3);
        harness.Scheduler.Step();

        // The very next step prefills the interactive prompt in the batch request's slot; the batch request waits.
        Assert.Equal("XYZ", new string(harness.Backend.Batches[^1].Select(e => (char)e.Token).ToArray()));
        var status = harness.Scheduler.GetStatus();
        Assert.Equal(0, status.BatchRunning);
        Assert.Equal(1, status.BatchWaiting);
        harness.RunToIdle();

        // It continued where it was: the same text as alone, every token once, and its slot holds exactly the
        // prompt and the generated tokens (the fake backend checks positions stay contiguous).
        var result = (await batch.CollectAsync()).Choices[0];
        Assert.Equal(expected, result.Text);
        Assert.Equal(12, result.Completion.Usage.CompletionTokens);
        Assert.Equal(FinishReason.Length, result.Completion.FinishReason);
        Assert.Equal("abc" + expected[..^1], new string(harness.Backend.KvOf(0).Select(t => (char)t).ToArray()));
        Assert.Equal("abc", (await interactive.CollectAsync()).Choices[0].Text);
    }

    [Fact]
    public async Task Batch_requests_sit_out_the_steps_that_prefill_an_interactive_prompt()
    {
        using var harness = new SchedulerHarness(slots: 2, budget: 4, targetStepMs: 0);
        var batch = harness.Submit("kkk", maxTokens: 20, priority: Batch);
        harness.Steps(3);

        var interactive = harness.Submit("xxxxxxxxxx", maxTokens: 2);
        harness.Backend.Batches.Clear();
        while (harness.Backend.Batches.Sum(b => b.Count(e => e.Token == 'x')) < 10)
        {
            harness.Scheduler.Step();
        }

        // The interactive prompt (10 tokens, 4 a step) took three steps, and the batch stream decoded in none of them.
        var prefill = harness.Backend.Batches.Where(b => b.Any(e => e.Token == 'x')).ToList();
        Assert.Equal(3, prefill.Count);
        Assert.All(prefill, b => Assert.All(b, e => Assert.Equal('x', (char)e.Token)));
        harness.RunToIdle();
        Assert.Equal(20, (await batch.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        Assert.Equal(2, (await interactive.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
    }

    [Fact]
    public async Task A_preempted_batch_request_that_was_still_prefilling_starts_its_prompt_again()
    {
        using var harness = new SchedulerHarness(slots: 1, budget: 4, targetStepMs: 0);
        var batch = harness.Submit(new string('k', 12), maxTokens: 2, priority: Batch);
        harness.Scheduler.Step();
        var interactive = harness.Submit("ab", maxTokens: 2);
        harness.RunToIdle();

        Assert.Equal("cd", (await interactive.CollectAsync()).Choices[0].Text);
        var result = (await batch.CollectAsync()).Choices[0];
        Assert.Equal("lm", result.Text);
        Assert.Equal(12, result.Completion.Usage.PromptTokens);

        // The first 4-token chunk, then the whole prompt again once the interactive request had the slot.
        Assert.Equal(16, harness.Backend.Batches.Sum(b => b.Count(e => e.Token == 'k')));
    }

    [Fact]
    public async Task Interactive_requests_wait_for_interactive_slots_without_preempting_anything_else()
    {
        using var harness = new SchedulerHarness(slots: 2);
        var first = harness.Submit("aaa", maxTokens: 6);
        var batch = harness.Submit("kkk", maxTokens: 6, priority: Batch);
        harness.Scheduler.Step();
        var wide = harness.Submit("xxx", maxTokens: 2, choices: 2);
        harness.Scheduler.Step();

        // Two choices need two slots; preempting the batch request frees only one, so nothing is preempted.
        Assert.Equal(1, harness.Scheduler.GetStatus().BatchRunning);
        harness.RunToIdle();
        foreach (var stream in new[] { first, batch, wide })
        {
            Assert.All((await stream.CollectAsync()).Choices, c => Assert.Equal(FinishReason.Length, c.Completion.FinishReason));
        }
    }

    [Fact]
    public void The_batch_lane_has_its_own_bound_and_leaves_the_interactive_queue_alone()
    {
        using var harness = new SchedulerHarness(slots: 1, maxQueue: 1, maxBatchQueue: 1);
        harness.Submit("a", priority: Batch);
        harness.Submit("b", priority: Batch);
        var refused = Assert.Throws<GenerationException>(() => harness.Submit("c", priority: Batch));
        Assert.Equal(GenerationErrorCode.Overloaded, refused.Code);
        Assert.Contains("batch", refused.Message, StringComparison.Ordinal);

        harness.Submit("d");
        harness.Submit("e");
        Assert.Equal(GenerationErrorCode.Overloaded, Assert.Throws<GenerationException>(() => harness.Submit("f")).Code);
        Assert.Equal(4, harness.Scheduler.InFlight);
        harness.RunToIdle();
        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public async Task Requests_admitted_together_beyond_their_lanes_slots_and_queue_are_invalid_not_overloaded()
    {
        using var harness = new SchedulerHarness(slots: 2, maxQueue: 1, maxBatchQueue: 4);
        GenerationRequest Together(int count, RequestPriority priority) => new() { Prompt = "a", MaxTokens = 2, AdmittedTogether = count, Priority = priority };
        int[] Tokens() => [.. harness.Backend.Vocabulary.Tokenize("a", false, false)];

        // The interactive lane holds 2 + 1; the batch lane 2 + 4. Nothing is counted for a refused request.
        var refused = Assert.Throws<GenerationException>(() => harness.Scheduler.Submit(Together(4, RequestPriority.Interactive), Tokens(), CancellationToken.None));
        Assert.Equal(GenerationErrorCode.InvalidRequest, refused.Code);
        Assert.Equal(GenerationField.Prompt, refused.Field);
        Assert.Contains("at most 3 at once", refused.Message, StringComparison.Ordinal);
        var batchRefused = Assert.Throws<GenerationException>(() => harness.Scheduler.Submit(Together(7, Batch), Tokens(), CancellationToken.None));
        Assert.Contains("Scheduler:MaxBatchQueue", batchRefused.Message, StringComparison.Ordinal);
        Assert.Equal(0, harness.Scheduler.InFlight);

        await using var fits = harness.Scheduler.Submit(Together(3, RequestPriority.Interactive), Tokens(), CancellationToken.None);
        await using var batchFits = harness.Scheduler.Submit(Together(6, Batch), Tokens(), CancellationToken.None);
        Assert.Equal(2, harness.Scheduler.InFlight);
        harness.RunToIdle();
        Assert.Equal(FinishReason.Length, (await fits.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(FinishReason.Length, (await batchFits.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public async Task A_cancelled_waiting_batch_request_leaves_its_lane()
    {
        using var harness = new SchedulerHarness(slots: 1);
        var running = harness.Submit("aaa", maxTokens: 20);
        harness.Scheduler.Step();
        var batch = harness.Submit("kkk", maxTokens: 2, priority: Batch);
        harness.Scheduler.Step();
        Assert.Equal(1, harness.Scheduler.GetStatus().BatchWaiting);
        batch.Cancel();
        harness.Scheduler.Step();
        Assert.Equal(0, harness.Scheduler.GetStatus().BatchWaiting);
        Assert.Equal(FinishReason.Cancelled, (await batch.CollectAsync()).Choices[0].Completion.FinishReason);
        running.Cancel();
        harness.RunToIdle();
    }

    [Fact]
    public void Batch_requests_waiting_and_running_are_reported_on_the_engine_meter()
    {
        // A meter of this scheduler's own: tests in parallel run schedulers whose meters share the engine meter's name.
        using var meters = new TestMeterFactory();
        using var harness = new SchedulerHarness(slots: 1, meterFactory: meters);
        harness.Submit("aaa", maxTokens: 20, priority: Batch);
        harness.Scheduler.Step();
        harness.Submit("bbb", maxTokens: 2, priority: Batch);
        harness.Submit("ccc", maxTokens: 2, priority: Batch);
        harness.Scheduler.Step();

        var seen = new Dictionary<string, long>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == SchedulerMetrics.MeterName && instrument.Meter.Scope == meters)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<int>((instrument, value, _, _) => seen[instrument.Name] = value);
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Equal(1, seen["llmserver.num_batch_requests_running"]);
        Assert.Equal(2, seen["llmserver.num_batch_requests_waiting"]);
        Assert.Equal(1, seen["llmserver.num_requests_running"]);
        Assert.Equal(2, seen["llmserver.num_requests_waiting"]);
    }
}
