namespace LlmServer.Operations.Limits;

/// <summary>Configuration section <c>Limits</c>. A value of 0 turns that limit off.</summary>
public sealed class LimitsOptions
{
    public const string SectionName = "Limits";

    /// <summary>Requests per minute per API key (a token bucket: up to this many at once, then one per 60/N seconds).</summary>
    public int RequestsPerMinute { get; set; }

    /// <summary>
    /// Generations one API key may run at the same time (every endpoint marked <see cref="GenerationEndpoint"/>, and the
    /// hub methods in <see cref="HubGenerationMethods"/>); further ones get 429.
    /// </summary>
    public int ConcurrentGenerationsPerKey { get; set; }

    /// <summary>Most prompt tokens one request may carry (after the chat template); longer prompts are refused.</summary>
    public int MaxPromptTokens { get; set; }

    /// <summary>SignalR hub methods that start a generation (for <see cref="ConcurrentGenerationsPerKey"/>); <c>null</c> means <see cref="DefaultHubGenerationMethods"/>.</summary>
    public IList<string>? HubGenerationMethods { get; set; }

    public static IReadOnlyList<string> DefaultHubGenerationMethods { get; } = ["SendMessage", "Regenerate", "EditMessage"];
}
