using System.Text;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// A scripted backend for the scheduler's logic: one character per token (token id = char code), token 0 is end of
/// generation, and the "model" continues any token t with <see cref="Next"/>(t). It checks that every slot's
/// positions stay contiguous, and records every batch.
/// </summary>
internal sealed class FakeBackend(int slots, int slotContext) : IInferenceBackend
{
    private readonly List<BatchEntry> _batch = [];
    private readonly List<int>[] _kv = Enumerable.Range(0, slots).Select(_ => new List<int>()).ToArray();

    public int SlotCount { get; } = slots;

    public int SlotContextSize { get; } = slotContext;

    public ITokenVocabulary Vocabulary { get; } = new CharVocabulary();

    public List<IReadOnlyList<BatchEntry>> Batches { get; } = [];

    public Queue<DecodeOutcome> ForcedOutcomes { get; } = new();

    public List<(int Source, int Target)> Copies { get; } = [];

    /// <summary>The continuation rule: by default the next letter of the alphabet, wrapping z to a.</summary>
    public Func<int, int> Next { get; set; } = token => token is >= 'a' and < 'z' ? token + 1 : 'a';

    /// <summary>Thrown by samplers when set (to test one request failing).</summary>
    public Exception? SamplerFailure { get; set; }

    public IReadOnlyList<int> KvOf(int slot) => _kv[slot];

    public void BeginBatch(bool forPrompt) => _batch.Clear();

    public int AddToBatch(int token, int position, int slot, bool wantLogits)
    {
        _batch.Add(new BatchEntry(token, position, slot, wantLogits));
        return _batch.Count - 1;
    }

    public DecodeOutcome Decode()
    {
        Batches.Add(_batch.ToArray());
        if (ForcedOutcomes.TryDequeue(out var forced) && forced != DecodeOutcome.Ok)
        {
            return forced;
        }

        foreach (var entry in _batch)
        {
            Assert.Equal(_kv[entry.Slot].Count, entry.Position);
            Assert.True(entry.Position < SlotContextSize, "position beyond the slot's context");
            _kv[entry.Slot].Add(entry.Token);
        }

        return DecodeOutcome.Ok;
    }

    public void TruncateSlot(int slot, int fromPosition)
    {
        var from = Math.Max(0, fromPosition);
        if (from < _kv[slot].Count)
        {
            _kv[slot].RemoveRange(from, _kv[slot].Count - from);
        }
    }

    public void CopySlot(int sourceSlot, int targetSlot)
    {
        Copies.Add((sourceSlot, targetSlot));
        _kv[targetSlot].Clear();
        _kv[targetSlot].AddRange(_kv[sourceSlot]);
    }

    public ReadOnlySpan<float> GetLogits(int batchIndex)
    {
        var logits = new float[128];
        logits[Next(_batch[batchIndex].Token)] = 10f;
        return logits;
    }

    public ITokenSampler CreateSampler(SamplingOptions options, string? grammar, IReadOnlyList<string> grammarTriggers, bool ignoreEos)
    {
        if (grammar == "invalid")
        {
            throw new InvalidOperationException("bad grammar");
        }

        return new FakeSampler(this);
    }

    public void Dispose()
    {
    }

    internal readonly record struct BatchEntry(int Token, int Position, int Slot, bool Logits);

    private sealed class FakeSampler(FakeBackend backend) : ITokenSampler
    {
        public int Sample(IInferenceBackend ignored, int batchIndex) =>
            backend.SamplerFailure is { } failure ? throw failure : backend.Next(backend._batch[batchIndex].Token);

        public void Dispose()
        {
        }
    }

    private sealed class CharVocabulary : ITokenVocabulary
    {
        public int Count => 128;

        public bool AddBos => false;

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial) => text.Select(c => (int)c).ToArray();

        public int TokenToBytes(int token, Span<byte> destination) => Encoding.UTF8.GetBytes(((char)token).ToString(), destination);

        public bool IsEndOfGeneration(int token) => token == 0;
    }
}
