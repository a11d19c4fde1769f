using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>The scheduler's own loop thread stopping while requests arrive, on a <see cref="FakeBackend"/>.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task A_request_submitted_as_the_loop_stops_is_refused_not_left_queued_forever()
    {
        var (scheduler, backend, _) = await StartAsync();
        using (scheduler)
        {
            var refused = Assert.Throws<GenerationException>(() => SubmitWhileTheLoopStops(scheduler, backend));

            Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
            await scheduler.Stopped;
            Assert.Equal(0, scheduler.InFlight);
        }
    }

    [Fact]
    public async Task The_model_is_freed_only_after_a_request_being_submitted_has_created_its_samplers()
    {
        var (scheduler, backend, logger) = await StartAsync();
        using (scheduler)
        {
            var freedWhileCreating = true;
            backend.CreatingSampler += () => freedWhileCreating = backend.Disposed.IsCompleted;

            // The fake's sampler throws ObjectDisposedException, not the refusal, where the model was already freed.
            Assert.Throws<GenerationException>(() => SubmitWhileTheLoopStops(scheduler, backend));

            Assert.False(freedWhileCreating);
            Assert.True(logger.WaitingForSubmits.IsCompleted);
            await scheduler.Stopped;
            Assert.True(backend.Disposed.IsCompleted);
        }
    }

    private static async Task<(InferenceScheduler Scheduler, FakeBackend Backend, StopLogger Logger)> StartAsync()
    {
        var backend = new FakeBackend(slots: 2, slotContext: 64);
        var logger = new StopLogger();
        var scheduler = new InferenceScheduler(() => backend, new SchedulerOptions { Slots = 2, ContextSize = 128 }, backend.Clock, logger);
        scheduler.Start();
        await scheduler.Started;

        // The interleaving at stake: Submit has found the loop running and is creating its sampler when the server
        // stops. The hook stops the scheduler on another thread (its Dispose waits for the loop) and holds the sampler
        // until the loop, its intake closed, either waits for this Submit or has freed the model.
        backend.CreatingSampler = () =>
        {
            _ = Task.Run(scheduler.Dispose);
            Task.WhenAny(logger.WaitingForSubmits, backend.Disposed).GetAwaiter().GetResult();
        };
        return (scheduler, backend, logger);
    }

    private static GenerationStream SubmitWhileTheLoopStops(InferenceScheduler scheduler, FakeBackend backend) =>
        scheduler.Submit(new GenerationRequest { Prompt = "ab", MaxTokens = 4 }, backend.Vocabulary.Tokenize("ab", false, false), CancellationToken.None);

    /// <summary>Completes <see cref="WaitingForSubmits"/> when the stopping loop logs that it waits for Submits under way.</summary>
    private sealed class StopLogger : ILogger
    {
        private readonly TaskCompletionSource _waitingForSubmits = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task WaitingForSubmits => _waitingForSubmits.Task;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 1107)
            {
                _waitingForSubmits.TrySetResult();
            }
        }
    }
}
