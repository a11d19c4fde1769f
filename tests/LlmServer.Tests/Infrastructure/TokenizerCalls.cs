using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>Counts the real model's tokenizations (the engine's vocabulary, decorated): a seam, not a clock.</summary>
internal sealed class TokenizerCalls
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    /// <summary>Decorates the engine's backend (pass to the test server's configureServices).</summary>
    public void Install(IServiceCollection services) => services.AddSingleton(new BackendDecorator(inner => new CountingBackend(inner, this)));

    private sealed class CountingVocabulary(ITokenVocabulary inner, TokenizerCalls calls) : ITokenVocabulary
    {
        public int Count => inner.Count;

        public bool AddBos => inner.AddBos;

        public TokenCountBound Bound => inner.Bound;

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
        {
            Interlocked.Increment(ref calls._count);
            return inner.Tokenize(text, addSpecial, parseSpecial);
        }

        public int[] TokenizeContinuation(string text, bool parseSpecial)
        {
            Interlocked.Increment(ref calls._count);
            return inner.TokenizeContinuation(text, parseSpecial);
        }

        public int TokenToBytes(int token, Span<byte> destination) => inner.TokenToBytes(token, destination);

        public bool IsEndOfGeneration(int token) => inner.IsEndOfGeneration(token);
    }

    private sealed class CountingBackend(IInferenceBackend inner, TokenizerCalls calls) : IInferenceBackend
    {
        public int SlotCount => inner.SlotCount;

        public int SlotContextSize => inner.SlotContextSize;

        public ITokenVocabulary Vocabulary { get; } = new CountingVocabulary(inner.Vocabulary, calls);

        public bool CanShift => inner.CanShift;

        public void BeginBatch(bool forPrompt) => inner.BeginBatch(forPrompt);

        public int AddToBatch(int token, int position, int slot, bool wantLogits) => inner.AddToBatch(token, position, slot, wantLogits);

        public DecodeOutcome Decode() => inner.Decode();

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
