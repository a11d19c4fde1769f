using LlmServer.Engine.Generation;
using LlmServer.Engine.Sampling;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// A backend that passes every call to the engine's real one: test seams (<see cref="DecodeGate"/>,
/// <see cref="TokenizerCalls"/>) override only what they watch. Also linked into LlmServer.Extensions.Tests and
/// LlmServer.Engine.Tests.
/// </summary>
internal abstract class ForwardingBackend(IInferenceBackend inner) : IInferenceBackend
{
    public int SlotCount => inner.SlotCount;

    public int SlotContextSize => inner.SlotContextSize;

    public virtual ITokenVocabulary Vocabulary => inner.Vocabulary;

    public bool CanShift => inner.CanShift;

    public void BeginBatch(bool forPrompt) => inner.BeginBatch(forPrompt);

    public int AddToBatch(int token, int position, int slot, bool wantLogits) => inner.AddToBatch(token, position, slot, wantLogits);

    public virtual DecodeOutcome Decode() => inner.Decode();

    public void TruncateSlot(int slot, int fromPosition) => inner.TruncateSlot(slot, fromPosition);

    public void CopySlot(int sourceSlot, int targetSlot) => inner.CopySlot(sourceSlot, targetSlot);

    public void RemoveAndShift(int slot, int fromPosition, int toPosition) => inner.RemoveAndShift(slot, fromPosition, toPosition);

    public byte[] SaveSlot(int slot) => inner.SaveSlot(slot);

    public bool RestoreSlot(int slot, ReadOnlySpan<byte> state) => inner.RestoreSlot(slot, state);

    public ReadOnlySpan<float> GetLogits(int batchIndex) => inner.GetLogits(batchIndex);

    public virtual ITokenSampler CreateSampler(SamplingOptions options, string? grammar, LazyTriggers triggers, bool ignoreEos) =>
        inner.CreateSampler(options, grammar, triggers, ignoreEos);

    public virtual void Dispose() => inner.Dispose();
}
