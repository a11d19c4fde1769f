namespace LlmServer.Operations.Limits;

/// <summary>Configuration section <c>Limits</c>. A value of 0 turns that limit off.</summary>
public sealed class LimitsOptions
{
    public const string SectionName = "Limits";

    /// <summary>Requests per minute per API key (a token bucket: up to this many at once, then one per 60/N seconds).</summary>
    public int RequestsPerMinute { get; set; }

    /// <summary>Generations one API key may run at the same time; further ones get 429.</summary>
    public int ConcurrentGenerationsPerKey { get; set; }

    /// <summary>Most prompt tokens one request may carry (after the chat template); longer prompts are refused.</summary>
    public int MaxPromptTokens { get; set; }

    /// <summary>
    /// Request paths whose POST or PUT starts a generation (for <see cref="ConcurrentGenerationsPerKey"/>); <c>*</c> matches one
    /// path segment. <c>null</c> means <see cref="DefaultGenerationPaths"/>.
    /// </summary>
    public IList<string>? GenerationPaths { get; set; }

    public static IReadOnlyList<string> DefaultGenerationPaths { get; } =
        ["/v1/chat/completions", "/v1/completions", "/api/sessions/*/messages", "/api/sessions/*/messages/*", "/api/sessions/*/regenerate"];

    /// <summary>SignalR hub methods that start a generation (for <see cref="ConcurrentGenerationsPerKey"/>); <c>null</c> means <see cref="DefaultHubGenerationMethods"/>.</summary>
    public IList<string>? HubGenerationMethods { get; set; }

    public static IReadOnlyList<string> DefaultHubGenerationMethods { get; } = ["SendMessage", "Regenerate", "EditMessage"];
}
