using LlmServer.Engine.Generation;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// The drain and the idle signal it waits on, on a test-stepped scheduler whose clock moves only when the test (or a
/// decode) moves it: every wait ends on an event, none on elapsed time.
/// </summary>
public sealed class DrainTests
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Drain_completes_when_the_last_request_finishes_without_time_passing()
    {
        using var harness = new SchedulerHarness();
        harness.Backend.StepTime = _ => TimeSpan.Zero;
        var first = harness.Submit("ab", maxTokens: 3);
        var second = harness.Submit("cd", maxTokens: 6);
        harness.Scheduler.Step();
        var startedAt = harness.Backend.Clock.GetUtcNow();

        var drain = harness.Scheduler.DrainAsync(DrainTimeout);
        Assert.False(drain.IsCompleted);
        harness.RunToIdle();
        await drain;

        Assert.Equal(startedAt, harness.Backend.Clock.GetUtcNow());
        Assert.Equal(FinishReason.Length, (await first.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(FinishReason.Length, (await second.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public async Task Drain_with_nothing_in_flight_completes_at_once()
    {
        using var harness = new SchedulerHarness();

        await harness.Scheduler.DrainAsync(DrainTimeout);

        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public async Task Drain_times_out_then_cancels_what_is_left_and_waits_for_it()
    {
        var logger = new DrainLogger();
        using var harness = new SchedulerHarness(slots: 1, slotContext: 64, logger: logger);
        var running = harness.Submit("ab", maxTokens: 50);
        var queued = harness.Submit("cd", maxTokens: 50);
        harness.Steps(2);

        var drain = harness.Scheduler.DrainAsync(DrainTimeout);
        harness.Backend.Clock.Advance(DrainTimeout);
        Assert.Equal(2, await logger.Cancelling.Task);

        // Cancelled, the requests end at the scheduler's next step; until then the drain waits (its grace never passes).
        Assert.False(drain.IsCompleted);
        harness.Scheduler.Step();
        await drain;

        Assert.Equal(FinishReason.Cancelled, (await running.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(FinishReason.Cancelled, (await queued.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(0, harness.Scheduler.InFlight);
    }

    [Fact]
    public async Task Requests_submitted_once_the_drain_began_are_refused_and_the_drain_waits_for_the_others()
    {
        using var harness = new SchedulerHarness();
        var running = harness.Submit("ab", maxTokens: 3);
        harness.Scheduler.Step();

        var drain = harness.Scheduler.DrainAsync(DrainTimeout);
        var refused = Assert.Throws<GenerationException>(() => harness.Submit("cd"));
        Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
        Assert.Equal(1, harness.Scheduler.InFlight);

        harness.RunToIdle();
        await drain;
        Assert.Equal(FinishReason.Length, (await running.CollectAsync()).Choices[0].Completion.FinishReason);
    }

    [Fact]
    public async Task A_request_admitted_while_the_idle_wait_runs_is_waited_for_too()
    {
        using var harness = new SchedulerHarness(slots: 2);
        var first = harness.Submit("ab", maxTokens: 2);
        harness.Scheduler.Step();
        var idle = harness.Scheduler.WaitForIdleAsync(Timeout.InfiniteTimeSpan);
        var second = harness.Submit("cd", maxTokens: 8);

        // The first ends while the second still runs: nothing was idle in between, so the wait goes on.
        harness.Steps(3);
        Assert.Equal(FinishReason.Length, (await first.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(1, harness.Scheduler.InFlight);
        Assert.False(idle.IsCompleted);

        harness.RunToIdle();
        Assert.True(await idle);
        Assert.Equal(FinishReason.Length, (await second.CollectAsync()).Choices[0].Completion.FinishReason);
        Assert.Equal(0, harness.Scheduler.GetStatus().Running);
    }

    [Fact]
    public async Task The_idle_wait_reports_false_when_its_timeout_passes_first()
    {
        using var harness = new SchedulerHarness();
        harness.Submit("ab", maxTokens: 20);
        harness.Scheduler.Step();

        var idle = harness.Scheduler.WaitForIdleAsync(DrainTimeout);
        harness.Backend.Clock.Advance(DrainTimeout);

        Assert.False(await idle);
        Assert.Equal(1, harness.Scheduler.InFlight);
    }

    [Fact]
    public async Task Cancelling_the_drain_ends_its_wait_and_leaves_the_requests_running()
    {
        using var harness = new SchedulerHarness();
        using var cts = new CancellationTokenSource();
        var running = harness.Submit("ab", maxTokens: 4);
        harness.Scheduler.Step();

        var drain = harness.Scheduler.DrainAsync(Timeout.InfiniteTimeSpan, cts.Token);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => drain);
        harness.RunToIdle();
        Assert.Equal(FinishReason.Length, (await running.CollectAsync()).Choices[0].Completion.FinishReason);
    }

    /// <summary>Completes <see cref="Cancelling"/> with the count the drain logs when it times out and cancels.</summary>
    private sealed class DrainLogger : ILogger
    {
        public TaskCompletionSource<int> Cancelling { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 1006 && state is IReadOnlyList<KeyValuePair<string, object?>> values)
            {
                Cancelling.TrySetResult((int)values.First(v => v.Key == "InFlight").Value!);
            }
        }
    }
}
