using LlmServer.Engine.Generation;
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

    private sealed class GatedBackend(IInferenceBackend inner, DecodeGate gate) : IInferenceBackend
    {
        public int SlotCount => inner.SlotCount;

        public int SlotContextSize => inner.SlotContextSize;

        public ITokenVocabulary Vocabulary => inner.Vocabulary;

        public bool CanShift => inner.CanShift;

        public void BeginBatch(bool forPrompt) => inner.BeginBatch(forPrompt);

        public int AddToBatch(int token, int position, int slot, bool wantLogits) => inner.AddToBatch(token, position, slot, wantLogits);

        public DecodeOutcome Decode()
        {
            gate.Pass();
            return inner.Decode();
        }

        public void TruncateSlot(int slot, int fromPosition) => inner.TruncateSlot(slot, fromPosition);

        public void CopySlot(int sourceSlot, int targetSlot) => inner.CopySlot(sourceSlot, targetSlot);

        public void RemoveAndShift(int slot, int fromPosition, int toPosition) => inner.RemoveAndShift(slot, fromPosition, toPosition);

        public byte[] SaveSlot(int slot) => inner.SaveSlot(slot);

        public bool RestoreSlot(int slot, ReadOnlySpan<byte> state) => inner.RestoreSlot(slot, state);

        public ReadOnlySpan<float> GetLogits(int batchIndex) => inner.GetLogits(batchIndex);

        public ITokenSampler CreateSampler(SamplingOptions options, string? grammar, IReadOnlyList<string> grammarTriggers, bool ignoreEos) =>
            inner.CreateSampler(options, grammar, grammarTriggers, ignoreEos);

        public void Dispose() => inner.Dispose();
    }
}
