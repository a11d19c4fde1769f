using System.Diagnostics.Metrics;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// The batch lane under a steady interactive load: scripted arrivals on the fake engine, counting preemptions
/// (the scheduler's metric) and the batch prompts' prefill work.
/// </summary>
public sealed class BatchThrashTests
{
    private const RequestPriority Batch = RequestPriority.Batch;

    [Fact]
    public async Task Under_a_steady_interactive_stream_the_batch_lane_keeps_one_slot_and_is_preempted_only_while_it_learns_the_gaps()
    {
        var (preemptions, prefilled, batches) = await RunSteadyLoadAsync(holdMaxSteps: 64);

        // The batch lane found the engine idle and took both slots: the first arrival preempted one line. The first gap
        // (none seen before) admitted it again, and the next arrival preempted it again. From then on the slot the
        // interactive stream comes back to stays its own, and the other slot runs batch lines one after the other.
        Assert.Equal(2, preemptions);
        Assert.Equal(3, batches);

        // Each line's 8-token prompt once, and the twice-preempted line's twice more.
        Assert.Equal((BatchLines * 8) + 16, prefilled);
    }

    [Fact]
    public async Task Without_the_hold_every_gap_between_interactive_requests_admits_a_batch_line_that_the_next_arrival_preempts()
    {
        var (preemptions, prefilled, batches) = await RunSteadyLoadAsync(holdMaxSteps: 0);

        // Every arrival preempts the line admitted in the gap before it, but one: a line had just finished, leaving a
        // free slot. The lines finished are the same: the other slot ran them all along.
        Assert.Equal(Gaps - 1, preemptions);
        Assert.Equal(3, batches);

        // Each preempted line prefilled its prompt again (and the tokens it had generated, not counted here).
        Assert.Equal((BatchLines * 8) + (8 * (Gaps - 1)), prefilled);
    }

    [Fact]
    public async Task The_batch_request_with_the_least_work_in_its_slot_is_preempted_not_the_one_admitted_last()
    {
        using var meters = new TestMeterFactory();
        using var preemptions = new PreemptionCount(meters);
        using var harness = new SchedulerHarness(slots: 2, slotContext: 64, budget: 32, targetStepMs: 0, meterFactory: meters);
        var small = harness.Submit("kk", maxTokens: 12, priority: Batch);
        harness.Steps(2);
        var large = harness.Submit(new string('m', 24), maxTokens: 12, priority: Batch);
        harness.Steps(2);
        Assert.Equal(2, harness.Scheduler.GetStatus().BatchRunning);

        // "kk" and 3 generated tokens in one slot, 24 prompt tokens and one generated in the other: the small one goes.
        var interactive = harness.Submit("XY", maxTokens: 2);
        harness.Scheduler.Step();
        Assert.Equal(1, preemptions.Value);
        Assert.Equal([(0, 'X'), (0, 'Y')], harness.Backend.Batches[^1].Select(e => (e.Slot, (char)e.Token)));
        var status = harness.Scheduler.GetStatus();
        Assert.Equal(1, status.BatchRunning);
        Assert.Equal(1, status.BatchWaiting);

        harness.RunToIdle();
        Assert.Equal(2, (await interactive.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
        Assert.Equal("lmnopqrstuvw", (await small.CollectAsync()).Choices[0].Text);
        Assert.Equal("nopqrstuvwxy", (await large.CollectAsync()).Choices[0].Text);
        Assert.Equal(1, preemptions.Value);
    }

    [Fact]
    public async Task An_interactive_request_arriving_into_a_held_slot_is_admitted_in_the_very_next_step()
    {
        using var harness = new SchedulerHarness(slots: 1, targetStepMs: 0);
        var batch = harness.Submit("kkkk", maxTokens: 4, priority: Batch);
        var first = harness.Submit("ab", maxTokens: 2);
        harness.RunToIdle();
        Assert.Equal(FinishReason.Length, (await first.CollectAsync()).Choices[0].Completion.FinishReason);

        // The batch request ran once the stream was gone (the engine went idle: no gap was learnt, nothing is held).
        Assert.Equal("lmno", (await batch.CollectAsync()).Choices[0].Text);
        harness.Backend.Batches.Clear();
        var second = harness.Submit("cd", maxTokens: 2);
        harness.Scheduler.Step();
        Assert.Equal("cd", new string([.. harness.Backend.Batches[0].Select(e => (char)e.Token)]));
        harness.RunToIdle();
        Assert.Equal("ef", (await second.CollectAsync()).Choices[0].Text);
    }

    [Fact]
    public async Task Interactive_requests_that_keep_coming_back_within_the_window_delay_a_batch_request_but_never_starve_it()
    {
        // One slot; an interactive request every 40 idle steps, within the learnt window (twice the gap), so the slot
        // stays reserved. The batch request held 64 steps in all takes the slot in a gap anyway.
        using var harness = new SchedulerHarness(slots: 1, slotContext: 64, targetStepMs: 0, configure: o => o.BatchHoldMaxSteps = 64);
        GenerationStream? batch = null;
        var arrivals = 0;
        var finishedAt = -1;
        for (var quiet = 0; arrivals < 30 || InteractiveInFlight(harness) > 0;)
        {
            if (InteractiveInFlight(harness) == 0 && arrivals < 30 && quiet++ == 40)
            {
                harness.Submit("ab", maxTokens: 3);
                quiet = 0;
                if (++arrivals == 5)
                {
                    batch = harness.Submit("kkkk", maxTokens: 4, priority: Batch);
                }
            }

            harness.Scheduler.Step();
            if (batch is not null && finishedAt < 0 && harness.Scheduler.GetStatus() is { BatchRunning: 0, BatchWaiting: 0 })
            {
                finishedAt = arrivals;
            }
        }

        Assert.InRange(finishedAt, 5, 29);
        Assert.Equal("lmno", (await batch!.CollectAsync()).Choices[0].Text);
    }

    private const int Gaps = 30;

    private const int BatchLines = 6;

    /// <summary>
    /// Two slots; <see cref="BatchLines"/> batch requests (8-token prompts of their own, 40 tokens each) and an interactive stream of
    /// <see cref="Gaps"/> requests (2-token prompts, 3 tokens each), each submitted 2 steps after the one before
    /// ended. Returns the preemptions, the batch prompt tokens prefilled, and the batch requests finished while the
    /// interactive stream still ran.
    /// </summary>
    private static async Task<(long Preemptions, int Prefilled, int Batches)> RunSteadyLoadAsync(int holdMaxSteps)
    {
        using var meters = new TestMeterFactory();
        using var preemptions = new PreemptionCount(meters);
        using var harness = new SchedulerHarness(
            slots: 2, slotContext: 64, budget: 32, targetStepMs: 0, meterFactory: meters, configure: o => o.BatchHoldMaxSteps = holdMaxSteps);
        var batch = Enumerable.Range(0, BatchLines).Select(i => harness.Submit(new string((char)('A' + i), 8), maxTokens: 40, priority: Batch)).ToList();
        var interactive = new List<GenerationStream>();
        var quiet = 0;
        var batchesDone = 0;
        while (interactive.Count < Gaps || InteractiveInFlight(harness) > 0)
        {
            if (InteractiveInFlight(harness) == 0 && interactive.Count < Gaps && quiet++ == 2)
            {
                interactive.Add(harness.Submit("ab", maxTokens: 3));
                quiet = 0;
            }

            harness.Scheduler.Step();
            var status = harness.Scheduler.GetStatus();
            batchesDone = BatchLines - status.BatchRunning - status.BatchWaiting;
        }

        harness.RunToIdle();
        foreach (var stream in interactive)
        {
            Assert.Equal("cde", (await stream.CollectAsync()).Choices[0].Text);
        }

        foreach (var stream in batch)
        {
            var result = (await stream.CollectAsync()).Choices[0];
            Assert.Equal(40, result.Completion.Usage.CompletionTokens);
            Assert.Equal(FinishReason.Length, result.Completion.FinishReason);
        }

        var prefilled = harness.Backend.Batches.Sum(b => b.Count(e => e.Token is >= 'A' and < 'A' + BatchLines));
        return (preemptions.Value, prefilled, batchesDone);
    }

    private static int InteractiveInFlight(SchedulerHarness harness)
    {
        var status = harness.Scheduler.GetStatus();
        return status.Running + status.Waiting - status.BatchRunning - status.BatchWaiting;
    }

    /// <summary>The scheduler's preemption counter, for the meters of one test's own factory.</summary>
    private sealed class PreemptionCount : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _value;

        public PreemptionCount(TestMeterFactory meters)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Scope == meters && instrument.Name == "llmserver.num_preemptions")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _value, value));
            _listener.Start();
        }

        public long Value => Interlocked.Read(ref _value);

        public void Dispose() => _listener.Dispose();
    }
}
