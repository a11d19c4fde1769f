using System.Text;
using LLama;
using LLama.Native;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Sampling;

namespace LlmServer.Engine.Scheduling;

/// <summary>The llama.cpp context behind the scheduler: one sequence id per slot.</summary>
internal sealed class LlamaInferenceBackend : IInferenceBackend
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;

    // LLamaBatch never shrinks and pins one array per capacity slot on every decode: generation steps get a
    // small batch of their own so a long prompt does not tax every later token.
    private readonly LLamaBatch _generationBatch = new();
    private readonly LLamaBatch _promptBatch = new();
    private LLamaBatch _batch;

    public LlamaInferenceBackend(LLamaWeights weights, LLamaContext context, int slots)
    {
        _weights = weights;
        _context = context;
        _batch = _generationBatch;
        SlotCount = slots;
        SlotContextSize = (int)(context.ContextSize / (uint)slots);
        Vocabulary = new LlamaVocabulary(weights);
    }

    public int SlotCount { get; }

    public int SlotContextSize { get; }

    public ITokenVocabulary Vocabulary { get; }

    internal LlamaVocabulary LlamaVocab => (LlamaVocabulary)Vocabulary;

    public void BeginBatch(bool forPrompt)
    {
        _batch = forPrompt ? _promptBatch : _generationBatch;
        _batch.Clear();
    }

    public int AddToBatch(int token, int position, int slot, bool wantLogits) =>
        _batch.Add(token, position, (LLamaSeqId)slot, wantLogits);

    public DecodeOutcome Decode() => _context.NativeHandle.Decode(_batch) switch
    {
        DecodeResult.Ok => DecodeOutcome.Ok,
        DecodeResult.NoKvSlot => DecodeOutcome.NoKvSpace,
        _ => DecodeOutcome.Failed,
    };

    public void TruncateSlot(int slot, int fromPosition) =>
        _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)slot, fromPosition, -1);

    public void CopySlot(int sourceSlot, int targetSlot)
    {
        _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)targetSlot, -1, -1);
        _context.NativeHandle.MemorySequenceCopy((LLamaSeqId)sourceSlot, (LLamaSeqId)targetSlot, -1, -1);
    }

    public bool CanShift => _context.NativeHandle.MemoryCanShift;

    public void RemoveAndShift(int slot, int fromPosition, int toPosition)
    {
        var handle = _context.NativeHandle;
        handle.MemorySequenceRemove((LLamaSeqId)slot, fromPosition, toPosition);
        handle.MemorySequenceAdd((LLamaSeqId)slot, toPosition, -1, fromPosition - toPosition);
    }

    public unsafe byte[] SaveSlot(int slot)
    {
        var handle = _context.NativeHandle;
        var size = handle.GetStateSize((LLamaSeqId)slot);
        var state = GC.AllocateUninitializedArray<byte>(checked((int)size));
        fixed (byte* destination = state)
        {
            var written = handle.GetState(destination, size, (LLamaSeqId)slot);
            return written == size ? state : state[..checked((int)written)];
        }
    }

    public unsafe bool RestoreSlot(int slot, ReadOnlySpan<byte> state)
    {
        var handle = _context.NativeHandle;
        handle.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
        fixed (byte* source = state)
        {
            // llama.cpp answers 0 when it rejects the state; it then clears the sequence itself.
            if (handle.SetState(source, (nuint)state.Length, (LLamaSeqId)slot) != 0)
            {
                return true;
            }
        }

        handle.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
        return false;
    }

    public ReadOnlySpan<float> GetLogits(int batchIndex) => _context.NativeHandle.GetLogitsIth(batchIndex);

    public ITokenSampler CreateSampler(SamplingOptions options, string? grammar, LazyTriggers triggers, bool ignoreEos)
    {
        var excluded = ignoreEos ? LlamaVocab.EndOfGenerationTokens : [];
        if (options.IsGreedy && !options.HasPenalties && grammar is null && options.LogitBias is not { Count: > 0 })
        {
            return new GreedySampler(excluded);
        }

        return new NativeChainSampler(_context.NativeHandle, _weights.NativeHandle, options, grammar, triggers, excluded);
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}

/// <summary>The model's vocabulary; tokenization reads the model only, so it is safe from any thread.</summary>
internal sealed class LlamaVocabulary : ITokenVocabulary
{
    private const string AnchorText = "\n";

    private readonly LLamaWeights _weights;
    private readonly SafeLlamaModelHandle.Vocabulary _vocab;

    /// <summary>
    /// The tokens of a newline tokenized alone, when that adds SentencePiece's leading space (else null): a continuation
    /// is tokenized after a newline, which never merges with what follows, and the newline's tokens are cut off.
    /// </summary>
    private readonly int[]? _continuationAnchor;

    public LlamaVocabulary(LLamaWeights weights)
    {
        _weights = weights;
        _vocab = weights.Vocab;
        Count = _vocab.Count;
        AddBos = _vocab.ShouldAddBOS;
        Bound = TokenCountBound.Of(weights);
        var eog = new List<int>();
        for (var token = 0; token < Count; token++)
        {
            if (((LLamaToken)token).IsEndOfGeneration(_vocab))
            {
                eog.Add(token);
            }
        }

        EndOfGenerationTokens = [.. eog];
        _continuationAnchor = SpacePrefixedAnchor();
    }

    public int Count { get; }

    public bool AddBos { get; }

    public TokenCountBound Bound { get; }

    /// <summary>Every token llama.cpp treats as end of generation (EOS, EOT, ...).</summary>
    public int[] EndOfGenerationTokens { get; }

    public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
    {
        var tokens = _weights.NativeHandle.Tokenize(text, addSpecial && AddBos, parseSpecial, Encoding.UTF8);
        var result = new int[tokens.Length];
        for (var i = 0; i < tokens.Length; i++)
        {
            result[i] = (int)tokens[i];
        }

        return result;
    }

    public int[] TokenizeContinuation(string text, bool parseSpecial)
    {
        if (_continuationAnchor is null || text.Length == 0)
        {
            return Tokenize(text, addSpecial: false, parseSpecial);
        }

        var anchored = Tokenize(AnchorText + text, addSpecial: false, parseSpecial);
        return anchored.AsSpan().StartsWith(_continuationAnchor)
            ? anchored[_continuationAnchor.Length..]
            : Tokenize(text, addSpecial: false, parseSpecial);
    }

    public int TokenToBytes(int token, Span<byte> destination, bool special) =>
        (int)_weights.NativeHandle.TokenToSpan(token, destination, 0, special);

    public bool IsEndOfGeneration(int token) => Array.IndexOf(EndOfGenerationTokens, token) >= 0;

    private int[]? SpacePrefixedAnchor()
    {
        var tokens = Tokenize(AnchorText, addSpecial: false, parseSpecial: false);
        return Encoding.UTF8.GetString(this.Utf8Of(tokens)) == AnchorText ? null : tokens;
    }
}
