using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Extensions.AI;

namespace LlmServer.Extensions.Tests;

/// <summary><c>WaitUntilReadyAsync</c> on a fake engine whose state the test moves: it wakes on the state-change event.</summary>
public sealed class WaitUntilReadyTests
{
    [Fact]
    public async Task Returns_once_the_engine_becomes_ready()
    {
        var engine = new ScriptedEngine(EngineState.Loading);
        var wait = engine.WaitUntilReadyAsync();
        Assert.False(wait.IsCompleted);

        engine.MoveTo(EngineState.Ready);

        await wait;
        Assert.Equal(1, engine.Waits);
    }

    [Fact]
    public async Task Returns_at_once_when_the_engine_is_ready()
    {
        var engine = new ScriptedEngine(EngineState.Ready);

        await engine.WaitUntilReadyAsync();

        Assert.Equal(0, engine.Waits);
    }

    [Theory]
    [InlineData(EngineState.Faulted)]
    [InlineData(EngineState.Stopped)]
    [InlineData(EngineState.Draining)]
    public async Task Throws_when_the_engine_leaves_loading_for_anything_but_ready(EngineState state)
    {
        var engine = new ScriptedEngine(EngineState.Loading);
        var wait = engine.WaitUntilReadyAsync();

        engine.MoveTo(state);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => wait);
        Assert.Contains(state.ToString(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Throws_at_once_when_the_engine_has_faulted()
    {
        var engine = new ScriptedEngine(EngineState.Faulted);

        await Assert.ThrowsAsync<InvalidOperationException>(() => engine.WaitUntilReadyAsync());
        Assert.Equal(0, engine.Waits);
    }

    [Fact]
    public async Task Cancelling_ends_the_wait()
    {
        var engine = new ScriptedEngine(EngineState.Loading);
        using var cts = new CancellationTokenSource();
        var wait = engine.WaitUntilReadyAsync(cts.Token);

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
    }

    /// <summary>An engine that only has a state: <see cref="MoveTo"/> changes it and raises the state-change event.</summary>
    private sealed class ScriptedEngine(EngineState state) : DelegatingTextGenerator(null!)
    {
        private readonly Lock _gate = new();
        private TaskCompletionSource<EngineState> _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private EngineState _state = state;

        public int Waits { get; private set; }

        public override EngineState State
        {
            get
            {
                lock (_gate)
                {
                    return _state;
                }
            }
        }

        public override Task<EngineState> WaitForStateChangeAsync(EngineState state, CancellationToken cancellationToken = default)
        {
            lock (_gate)
            {
                Waits++;
                return _state != state ? Task.FromResult(_state) : _changed.Task.WaitAsync(cancellationToken);
            }
        }

        public void MoveTo(EngineState next)
        {
            TaskCompletionSource<EngineState> changed;
            lock (_gate)
            {
                _state = next;
                changed = _changed;
                _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            changed.TrySetResult(next);
        }
    }
}
