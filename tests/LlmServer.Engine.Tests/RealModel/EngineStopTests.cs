using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Engine.Tests.Scheduling;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>
/// The engine's calls that use the native model against the engine stopping, or its loop dying, which free it: each
/// call finishes before the model is freed or is refused cleanly, never served by a freed model (stories260K; the
/// backend decorated by <see cref="FreedModelCheck"/>, which throws where a freed model would crash).
/// </summary>
public sealed class EngineStopTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>The engine's calls that use the vocabulary (the model) on the caller's thread.</summary>
    private static readonly string[] ModelCalls = ["tokenize", "count", "detokenize", "submit"];

    public static TheoryData<string> VocabularyCalls => [.. ModelCalls];

    [Theory]
    [MemberData(nameof(VocabularyCalls))]
    public async Task A_call_using_the_model_as_the_engine_stops_finishes_before_the_model_is_freed_or_is_refused(string call)
    {
        var logger = new EventLogger(EventLogger.WaitingForModelUsers);
        var model = new FreedModelCheck();
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 1, contextSize: 512, loggerFactory: logger, decorator: model.Decorator);
        try
        {
            // The interleaving at stake: the call has found the engine ready and is about to use the vocabulary when
            // the engine stops. The hook stops it on another thread and holds the call until the scheduler's loop
            // either waits for the call or has freed the model.
            Task? stopping = null;
            model.UsingVocabulary = () =>
            {
                stopping = Task.Run(() => engine.StopAsync(CancellationToken.None));
                Assert.True(Task.WhenAny(logger.Logged, model.Disposed).Wait(Bound), "the stopping loop neither waited for the call nor freed the model");
            };

            // Finished (the stop waited for it) or refused (Submit meets the closed scheduler after tokenizing): with a
            // freed model the check throws ObjectDisposedException instead.
            var outcome = Record.Exception(() => Call(engine, call));

            Assert.True(outcome is null or GenerationException { Code: GenerationErrorCode.Unavailable }, $"The call failed: {outcome}");
            Assert.NotNull(stopping);
            await stopping.WaitAsync(Bound);
            Assert.True(logger.Logged.IsCompleted, "the loop did not wait for the call");
            Assert.True(model.Disposed.IsCompleted);
        }
        finally
        {
            engine.Dispose();
        }
    }

    [Fact]
    public async Task Calls_after_the_engine_stopped_are_refused_with_a_clear_error()
    {
        var model = new FreedModelCheck();
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 1, contextSize: 512, decorator: model.Decorator);
        try
        {
            await engine.StopAsync(CancellationToken.None);
            Assert.True(model.Disposed.IsCompleted);

            foreach (var call in (string[])[.. ModelCalls, "template", "render"])
            {
                var refused = Assert.Throws<GenerationException>(() => Call(engine, call));
                Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
                Assert.Equal("The engine is stopped.", refused.Message);
            }
        }
        finally
        {
            engine.Dispose();
        }
    }

    [Fact]
    public async Task A_loop_that_dies_fails_its_request_frees_the_model_and_the_engine_refuses_calls_as_failed()
    {
        var model = new FreedModelCheck();
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 1, contextSize: 512, stepObserver: new DyingStep(), decorator: model.Decorator);
        try
        {
            var stream = engine.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 4 });
            var events = await SchedulerHarness.ReadAvailableAsync(stream).WaitAsync(Bound);
            using var bound = new CancellationTokenSource(Bound);
            var state = await engine.WaitForStateChangeAsync(EngineState.Ready, bound.Token);

            Assert.Equal(GenerationErrorCode.Internal, Assert.IsType<GenerationCompleted>(events[^1]).Error?.Code);
            Assert.Equal(EngineState.Faulted, state);
            Assert.False(engine.GetStatus().LoopAlive);
            Assert.True(model.Disposed.IsCompleted);
            var refused = Assert.Throws<GenerationException>(() => engine.Tokenize("Once"));
            Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
            Assert.Equal("The engine has failed; see the server log.", refused.Message);
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }

    private static object Call(LlmEngine engine, string call) => call switch
    {
        "tokenize" => engine.Tokenize("Once upon a time"),
        "count" => engine.CountPromptTokens("Once upon a time", limit: 100),
        "detokenize" => engine.Detokenize([100, 200]),
        "submit" => engine.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 4 }),
        "template" => engine.ApplyChatTemplate([new ChatTurn("user", "Hello")], []),
        "render" => engine.RenderPrompt(new GenerationRequest { Messages = [new ChatTurn("user", "Hello")] }),
        _ => throw new ArgumentOutOfRangeException(nameof(call)),
    };
}
