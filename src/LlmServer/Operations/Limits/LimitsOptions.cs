namespace LlmServer.Operations.Limits;

/// <summary>Configuration section <c>Limits</c>. A value of 0 turns that limit off.</summary>
public sealed class LimitsOptions
{
    public const string SectionName = "Limits";

    /// <summary>Requests per minute per API key (a token bucket: up to this many at once, then one per 60/N seconds).</summary>
    public int RequestsPerMinute { get; set; }

    /// <summary>
    /// Generations one API key may run at the same time (every endpoint marked <see cref="GenerationEndpoint"/>, and the
    /// hub methods marked <see cref="RunsModelAttribute"/>); further ones get 429. A session turn holds its permit until
    /// it ends, also after its client went away.
    /// </summary>
    public int ConcurrentGenerationsPerKey { get; set; }

    /// <summary>Most prompt tokens one request may carry (after the chat template); longer prompts are refused.</summary>
    public int MaxPromptTokens { get; set; }
}
