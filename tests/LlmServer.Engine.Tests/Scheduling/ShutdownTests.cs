using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>The scheduler's own loop thread stopping while requests arrive, on a <see cref="FakeBackend"/>.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task A_request_submitted_as_the_loop_stops_is_refused_not_left_queued_forever()
    {
        var backend = new FakeBackend(slots: 2, slotContext: 64);
        using var scheduler = new InferenceScheduler(() => backend, new SchedulerOptions { Slots = 2, ContextSize = 128 }, backend.Clock, NullLogger.Instance);
        scheduler.Start();
        await scheduler.Started;

        // The interleaving that lost requests: Submit has found the loop running, and the loop stops (takes in its
        // intake for the last time and ends) before Submit queues the request. Dispose waits for the loop at most 30 s,
        // so the hook also waits for the loop's end itself: a paused machine cannot let the request in early.
        backend.CreatingSampler = () =>
        {
            scheduler.Dispose();
            scheduler.Stopped.GetAwaiter().GetResult();
        };
        var refused = Assert.Throws<GenerationException>(() => scheduler.Submit(
            new GenerationRequest { Prompt = "ab", MaxTokens = 4 },
            backend.Vocabulary.Tokenize("ab", false, false),
            CancellationToken.None));

        Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
        Assert.True(scheduler.Stopped.IsCompleted);
        Assert.Equal(0, scheduler.InFlight);
    }
}
