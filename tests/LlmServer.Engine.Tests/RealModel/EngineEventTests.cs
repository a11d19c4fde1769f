using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>The engine's state-change and idle events on real models: what callers wait on instead of polling.</summary>
public sealed class EngineEventTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_state_change_event_reports_ready_once_loaded_then_stopped()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 1, contextSize: 512);
        try
        {
            using var bound = new CancellationTokenSource(Bound);
            Assert.Equal(EngineState.Ready, await engine.WaitForStateChangeAsync(EngineState.Loading, bound.Token));
            var stopped = engine.WaitForStateChangeAsync(EngineState.Ready, bound.Token);
            Assert.False(stopped.IsCompleted);

            await engine.StopAsync(CancellationToken.None);

            Assert.Equal(EngineState.Stopped, await stopped);
        }
        finally
        {
            engine.Dispose();
        }
    }

    [Fact]
    public async Task The_state_change_event_reports_faulted_when_the_model_cannot_load()
    {
        var path = Path.Combine(Path.GetTempPath(), $"not-a-model-{Guid.NewGuid():N}.gguf");
        await File.WriteAllTextAsync(path, "this is not a GGUF file");
        using var engine = RealEngine.Create(path);
        try
        {
            await engine.StartAsync(CancellationToken.None);
            using var bound = new CancellationTokenSource(Bound);

            Assert.Equal(EngineState.Faulted, await engine.WaitForStateChangeAsync(EngineState.Loading, bound.Token));
            Assert.Equal(EngineState.Faulted, await engine.WaitForStateChangeAsync(EngineState.Ready, bound.Token));
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Cancelling_a_state_change_wait_ends_it()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 1, contextSize: 512);
        try
        {
            using var cts = new CancellationTokenSource();
            var wait = engine.WaitForStateChangeAsync(EngineState.Ready, cts.Token);
            await cts.CancelAsync();

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
            Assert.Equal(EngineState.Ready, engine.State);
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }

    [Fact]
    public async Task Drain_waits_for_the_running_request_refuses_new_ones_and_says_draining()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 1, contextSize: 512);
        try
        {
            using var bound = new CancellationTokenSource(Bound);
            var draining = engine.WaitForStateChangeAsync(EngineState.Ready, bound.Token);
            var running = engine.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 24, IgnoreEos = true });

            var drain = engine.DrainAsync(Bound, bound.Token);
            Assert.Equal(EngineState.Draining, await draining);
            var refused = Assert.Throws<GenerationException>(() => engine.Submit(new GenerationRequest { Prompt = "Lily", MaxTokens = 2 }));
            Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
            await drain;

            var result = await running.CollectAsync(bound.Token);
            Assert.Equal(FinishReason.Length, result.Choices[0].Completion.FinishReason);
            Assert.Equal(24, result.Choices[0].Completion.Usage.CompletionTokens);
            Assert.True(await engine.WaitForIdleAsync(TimeSpan.Zero, bound.Token));
            Assert.Equal(0, engine.GetStatus().Running);
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }
}
