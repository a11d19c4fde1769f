namespace LlmServer.Engine.Embeddings;

/// <summary>Pooled, L2-normalised embeddings, computed apart from generation (no KV slot of the scheduler is used).</summary>
public interface ITextEmbedder
{
    /// <summary>The embedding model's id (the file name, or the served model's id when it embeds).</summary>
    string ModelId { get; }

    /// <summary>
    /// Embeds each input (text, or token ids of the embedding model's vocabulary); <paramref name="dimensions"/>,
    /// when given, must be the model's vector size (vectors are never shortened), and is checked before any input
    /// is decoded. Throws <see cref="Generation.GenerationException"/>: an input that is empty, too long or has
    /// unknown tokens (invalid request, naming <c>input[i]</c>), other dimensions (invalid request, naming them),
    /// a full queue (overloaded), a model that failed to load (unavailable).
    /// </summary>
    Task<EmbeddingResult> EmbedAsync(IReadOnlyList<EmbeddingInput> inputs, int? dimensions = null, CancellationToken cancellationToken = default);
}

/// <summary>One input: <see cref="Text"/> or <see cref="Tokens"/>.</summary>
public sealed record EmbeddingInput(string? Text, IReadOnlyList<int>? Tokens);

/// <summary>One vector per input, in order, and the tokens they took.</summary>
public sealed record EmbeddingResult(IReadOnlyList<float[]> Vectors, int PromptTokens);
