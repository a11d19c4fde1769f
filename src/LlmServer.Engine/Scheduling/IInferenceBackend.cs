namespace LlmServer.Engine.Scheduling;

/// <summary>
/// What the scheduler needs from a model with a multi-sequence context. The llama implementation is
/// <see cref="LlamaInferenceBackend"/>; tests drive the scheduler's logic with a fake. Every member except the
/// <see cref="ITokenVocabulary"/> and <see cref="CreateSampler"/> is called from the scheduler thread only.
/// </summary>
internal interface IInferenceBackend : IDisposable
{
    /// <summary>Sequences (slots) in the context.</summary>
    int SlotCount { get; }

    /// <summary>KV-cache tokens each slot holds.</summary>
    int SlotContextSize { get; }

    ITokenVocabulary Vocabulary { get; }

    /// <summary>Empties the batch; <paramref name="forPrompt"/> picks the large batch for steps with prompt chunks.</summary>
    void BeginBatch(bool forPrompt);

    /// <summary>Adds a token and returns its index in the batch (used to read its logits).</summary>
    int AddToBatch(int token, int position, int slot, bool wantLogits);

    /// <summary>Decodes the batch synchronously on the calling thread.</summary>
    DecodeOutcome Decode();

    /// <summary>Drops the slot's KV cells from <paramref name="fromPosition"/> on.</summary>
    void TruncateSlot(int slot, int fromPosition);

    /// <summary>Makes <paramref name="targetSlot"/>'s KV cache a copy of <paramref name="sourceSlot"/>'s.</summary>
    void CopySlot(int sourceSlot, int targetSlot);

    /// <summary>
    /// Whether KV cells can move to other positions (llama.cpp's <c>llama_memory_can_shift</c>): false for models
    /// whose memory cannot be re-positioned (recurrent state, some position encodings).
    /// </summary>
    bool CanShift { get; }

    /// <summary>
    /// Drops the slot's cells at positions [<paramref name="fromPosition"/>, <paramref name="toPosition"/>) and moves
    /// every later cell down by the removed length, so the kept cells continue at <paramref name="fromPosition"/>.
    /// Only valid when <see cref="CanShift"/>.
    /// </summary>
    void RemoveAndShift(int slot, int fromPosition, int toPosition);

    /// <summary>The slot's KV state as bytes (llama.cpp's <c>llama_state_seq_get_data</c>).</summary>
    byte[] SaveSlot(int slot);

    /// <summary>
    /// Replaces the slot's KV state with <paramref name="state"/> from <see cref="SaveSlot"/>. Returns false (and
    /// leaves the slot empty) when the context refuses it, as it does for state from another model or cache type.
    /// </summary>
    bool RestoreSlot(int slot, ReadOnlySpan<byte> state);

    /// <summary>Logits of the batch entry at <paramref name="batchIndex"/> of the last decode.</summary>
    ReadOnlySpan<float> GetLogits(int batchIndex);

    /// <summary>Makes a sampler for one choice; may be called from any thread.</summary>
    ITokenSampler CreateSampler(Generation.SamplingOptions options, string? grammar, Sampling.LazyTriggers triggers, bool ignoreEos);
}

internal enum DecodeOutcome
{
    Ok,

    /// <summary>No room in the KV cache for the batch; nothing was decoded.</summary>
    NoKvSpace,

    /// <summary>The decode failed; the context's state for the batch's sequences is unknown.</summary>
    Failed,
}

/// <summary>Picks the next token of one choice from the logits of one batch entry.</summary>
internal interface ITokenSampler : IDisposable
{
    /// <summary>Samples (and records, for penalties and grammar) the token after the entry at <paramref name="batchIndex"/>.</summary>
    int Sample(IInferenceBackend backend, int batchIndex);
}

/// <summary>The model's vocabulary; thread-safe.</summary>
internal interface ITokenVocabulary
{
    int Count { get; }

    bool AddBos { get; }

    /// <summary>The fewest tokens a text can have, known without tokenizing it (computed once, at load).</summary>
    TokenCountBound Bound { get; }

    int[] Tokenize(string text, bool addSpecial, bool parseSpecial);

    /// <summary>
    /// Tokenizes text that continues a prompt already tokenized: no BOS, and none of the space SentencePiece puts
    /// before the start of a text, which would put into the middle of the prompt a token that whole tokenization has not.
    /// </summary>
    int[] TokenizeContinuation(string text, bool parseSpecial);

    /// <summary>
    /// Writes the token's bytes and returns their length: a control token's text only when <paramref name="special"/>,
    /// else nothing. When the length exceeds <paramref name="destination"/> nothing is written (as LLamaSharp does),
    /// so callers read through <see cref="TokenBytes.PieceOf"/>.
    /// </summary>
    int TokenToBytes(int token, Span<byte> destination, bool special);

    bool IsEndOfGeneration(int token);
}
