using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Embeddings;

/// <summary>Configuration section <c>Embeddings</c>.</summary>
public sealed class EmbeddingOptions
{
    public const string SectionName = "Embeddings";

    /// <summary>A dedicated embedding model (GGUF); null embeds with the served model (<c>Model:Path</c>).</summary>
    public string? ModelPath { get; set; }

    /// <summary>Tokens one decode of the embedding context holds: the longest input, and the inputs batched together.</summary>
    public int ContextSize { get; set; } = 2048;

    /// <summary>Most inputs pooled in one decode.</summary>
    public int MaxSequences { get; set; } = 16;

    /// <summary>Inputs that may wait for the embedding thread; beyond it requests are refused (429).</summary>
    public int MaxQueuedInputs { get; set; } = 4096;

    /// <summary><c>Default</c> (the model's own pooling, mean when it names none), <c>Mean</c>, <c>Cls</c> or <c>Last</c>.</summary>
    public EmbeddingPooling Pooling { get; set; } = EmbeddingPooling.Default;
}

public enum EmbeddingPooling
{
    Default,
    Mean,
    Cls,
    Last,
}

/// <summary>Reports every problem of the <c>Embeddings</c> section at once.</summary>
internal sealed class EmbeddingOptionsValidator : IValidateOptions<EmbeddingOptions>
{
    public ValidateOptionsResult Validate(string? name, EmbeddingOptions options)
    {
        var errors = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.ModelPath) && !File.Exists(options.ModelPath))
        {
            errors.Add($"Embeddings:ModelPath '{Path.GetFullPath(options.ModelPath)}' does not exist.");
        }

        if (options.ContextSize < 16)
        {
            errors.Add("Embeddings:ContextSize must be at least 16.");
        }

        if (options.MaxSequences is < 1 or > 256)
        {
            errors.Add("Embeddings:MaxSequences must be between 1 and 256.");
        }

        if (options.MaxQueuedInputs < 1)
        {
            errors.Add("Embeddings:MaxQueuedInputs must be at least 1.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
