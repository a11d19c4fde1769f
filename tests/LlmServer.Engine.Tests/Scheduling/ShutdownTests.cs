using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>The scheduler's own loop thread stopping, or dying, while requests arrive, on a <see cref="FakeBackend"/>.</summary>
public sealed class ShutdownTests
{
    /// <summary>How long a hook holds a sampler, or a test waits on the loop, at most: a regression fails the test instead of hanging the run.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task A_request_submitted_as_the_loop_stops_is_refused_not_left_queued_forever()
    {
        var (scheduler, backend, logger) = await StartAsync();
        using (scheduler)
        {
            StopWhenCreatingSampler(scheduler, backend, logger);

            var refused = Assert.Throws<GenerationException>(() => Submit(scheduler, backend));

            Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
            await scheduler.Stopped.WaitAsync(Bound);
            Assert.Equal(0, scheduler.InFlight);
        }
    }

    [Fact]
    public async Task The_model_is_freed_only_after_a_request_being_submitted_has_created_its_samplers()
    {
        var (scheduler, backend, logger) = await StartAsync();
        using (scheduler)
        {
            StopWhenCreatingSampler(scheduler, backend, logger);
            var freedWhileCreating = true;
            backend.CreatingSampler += () => freedWhileCreating = backend.Disposed.IsCompleted;

            // The fake's sampler throws ObjectDisposedException, not the refusal, where the model was already freed.
            Assert.Throws<GenerationException>(() => Submit(scheduler, backend));

            Assert.False(freedWhileCreating);
            Assert.True(logger.Logged.IsCompleted);
            await scheduler.Stopped.WaitAsync(Bound);
            Assert.True(backend.Disposed.IsCompleted);
        }
    }

    [Fact]
    public async Task A_loop_that_dies_fails_its_requests_and_frees_the_model()
    {
        var (scheduler, backend, _) = await StartAsync(new DyingStep());
        using (scheduler)
        {
            var events = await SchedulerHarness.ReadAvailableAsync(Submit(scheduler, backend)).WaitAsync(Bound);
            await scheduler.Stopped.WaitAsync(Bound);

            var completed = Assert.IsType<GenerationCompleted>(events[^1]);
            Assert.Equal(FinishReason.Error, completed.FinishReason);
            Assert.Equal(GenerationErrorCode.Internal, completed.Error?.Code);
            Assert.True(backend.Disposed.IsCompleted);

            // What the health check and the metrics read after a death: the loop is gone, nothing is left in flight.
            Assert.False(scheduler.GetStatus().LoopAlive);
            Assert.Equal(0, scheduler.InFlight);
            Assert.Equal(GenerationErrorCode.Unavailable, Assert.Throws<GenerationException>(() => Submit(scheduler, backend)).Code);
        }
    }

    [Fact]
    public async Task A_loop_that_dies_frees_the_model_only_after_a_request_being_submitted_has_left()
    {
        var die = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (scheduler, backend, logger) = await StartAsync(new DyingStep(die.Task));
        using (scheduler)
        {
            // The running request's first step holds the loop until the second request is creating its sampler; then
            // the loop dies, and the hook holds the sampler until the dead loop either waits for it or has ended.
            var running = Submit(scheduler, backend);
            var freedWhileCreating = true;
            backend.CreatingSampler = () =>
            {
                die.TrySetResult();
                Assert.True(Task.WhenAny(logger.Logged, backend.Disposed, scheduler.Stopped).Wait(Bound), "the dead loop neither waited for the sampler nor ended");
                freedWhileCreating = backend.Disposed.IsCompleted;
            };

            var refused = Assert.Throws<GenerationException>(() => Submit(scheduler, backend));

            Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
            Assert.False(freedWhileCreating);
            Assert.True(logger.Logged.IsCompleted);
            await scheduler.Stopped.WaitAsync(Bound);
            Assert.True(backend.Disposed.IsCompleted);
            Assert.Equal(GenerationErrorCode.Internal, Assert.IsType<GenerationCompleted>((await SchedulerHarness.ReadAvailableAsync(running).WaitAsync(Bound))[^1]).Error?.Code);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_model_that_fails_to_free_is_logged_and_the_loop_still_ends_as_stopped(bool dies)
    {
        var backend = new FakeBackend(slots: 2, slotContext: 64) { DisposeFailure = new InvalidOperationException("the native free failed") };
        var logger = new EventLogger(EventLogger.FreeingFailed);
        using var scheduler = new InferenceScheduler(() => backend, new SchedulerOptions { Slots = 2, ContextSize = 128 }, backend.Clock, logger, stepObservers: dies ? [new DyingStep()] : []);
        scheduler.Start();
        await scheduler.Started.WaitAsync(Bound);

        // Thrown on the loop's thread, the failure would kill the process and leave Stopped unset.
        if (dies)
        {
            await SchedulerHarness.ReadAvailableAsync(Submit(scheduler, backend)).WaitAsync(Bound);
        }
        else
        {
            scheduler.Dispose();
        }

        await scheduler.Stopped.WaitAsync(Bound);
        Assert.True(backend.Disposed.IsCompleted);
        Assert.True(logger.Logged.IsCompleted, "the failed free was not logged");
        Assert.False(scheduler.GetStatus().LoopAlive);
    }

    [Fact]
    public async Task A_start_that_fails_ends_the_loop_and_keeps_the_configured_slots_in_the_status()
    {
        using var scheduler = new InferenceScheduler(() => throw new InvalidOperationException("the model did not load"), new SchedulerOptions { Slots = 3, ContextSize = 128 }, TimeProvider.System, NullLogger.Instance);
        scheduler.Start();

        await Assert.ThrowsAsync<InvalidOperationException>(() => scheduler.Started.WaitAsync(Bound));
        await scheduler.Stopped.WaitAsync(Bound);

        // What /props reports after a failed load: the slots configured, as while it was loading, and no loop.
        var status = scheduler.GetStatus();
        Assert.Equal(3, status.Slots);
        Assert.False(status.LoopAlive);
    }

    private static async Task<(InferenceScheduler Scheduler, FakeBackend Backend, EventLogger Logger)> StartAsync(params IStepObserver[] stepObservers)
    {
        var backend = new FakeBackend(slots: 2, slotContext: 64);
        var logger = new EventLogger(EventLogger.WaitingForModelUsers);
        var scheduler = new InferenceScheduler(() => backend, new SchedulerOptions { Slots = 2, ContextSize = 128 }, backend.Clock, logger, stepObservers: stepObservers);
        scheduler.Start();
        await scheduler.Started;
        return (scheduler, backend, logger);
    }

    /// <summary>
    /// The interleaving at stake: Submit has found the loop running and is creating its sampler when the server stops.
    /// The hook stops the scheduler on another thread (its Dispose waits for the loop) and holds the sampler until the
    /// loop, its intake closed, either waits for this Submit or has freed the model.
    /// </summary>
    private static void StopWhenCreatingSampler(InferenceScheduler scheduler, FakeBackend backend, EventLogger logger) =>
        backend.CreatingSampler = () =>
        {
            _ = Task.Run(scheduler.Dispose);
            Assert.True(Task.WhenAny(logger.Logged, backend.Disposed).Wait(Bound), "the stopping loop neither waited for the sampler nor freed the model");
        };

    private static GenerationStream Submit(InferenceScheduler scheduler, FakeBackend backend) =>
        scheduler.Submit(new GenerationRequest { Prompt = "ab", MaxTokens = 4 }, backend.Vocabulary.Tokenize("ab", false, false), CancellationToken.None);
}
