using LlmServer.Engine.Hosting;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// Holds the real model's decode steps while closed, so a test can keep a generation running for as long as it
/// needs (a drain that must not end yet) and knows, by <see cref="Blocked"/>, when one is held. Also linked into
/// LlmServer.Extensions.Tests.
/// </summary>
internal sealed class DecodeGate
{
    private readonly object _lock = new();
    private TaskCompletionSource _blocked = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _closed;
    private int _allowance;

    /// <summary>Completes when a decode step first waits at the gate since it was last closed.</summary>
    public Task Blocked
    {
        get
        {
            lock (_lock)
            {
                return _blocked.Task;
            }
        }
    }

    /// <summary>Decorates the engine's backend with this gate (pass to the test server's configureServices).</summary>
    public void Install(IServiceCollection services) => services.AddSingleton(new BackendDecorator(inner => new GatedBackend(inner, this)));

    public void Close() => CloseAfter(0);

    /// <summary>Lets <paramref name="decodes"/> more decode steps through, then holds the next ones.</summary>
    public void CloseAfter(int decodes)
    {
        lock (_lock)
        {
            _closed = true;
            _allowance = decodes;
            if (_blocked.Task.IsCompleted)
            {
                _blocked = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    public void Open()
    {
        lock (_lock)
        {
            _closed = false;
            _allowance = 0;
            Monitor.PulseAll(_lock);
        }
    }

    private void Pass()
    {
        lock (_lock)
        {
            while (_closed && _allowance == 0)
            {
                _blocked.TrySetResult();
                Monitor.Wait(_lock);
            }

            if (_closed)
            {
                _allowance--;
            }
        }
    }

    private sealed class GatedBackend(IInferenceBackend inner, DecodeGate gate) : ForwardingBackend(inner)
    {
        public override DecodeOutcome Decode()
        {
            gate.Pass();
            return base.Decode();
        }
    }
}
