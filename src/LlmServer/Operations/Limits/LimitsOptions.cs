namespace LlmServer.Operations.Limits;

/// <summary>Configuration section <c>Limits</c>. A value of 0 turns that limit off (<see cref="OpenResponsesPerKey"/>: see there).</summary>
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

    /// <summary>
    /// Responses of those endpoints and hub methods one API key may have open at the same time: being generated, or
    /// generated and still being sent. A generation's permit goes back when the engine is done, not when its client
    /// has read it, so without this a key could hold any number of finished, unread responses in memory until
    /// <c>Server:StalledClientSeconds</c>. 0: four times <see cref="ConcurrentGenerationsPerKey"/> (off when that is).
    /// </summary>
    public int OpenResponsesPerKey { get; set; }

    /// <summary>The open-response allowance in force (<see cref="OpenResponsesPerKey"/> with its default resolved); 0 when off.</summary>
    internal int EffectiveOpenResponsesPerKey =>
        OpenResponsesPerKey > 0 ? OpenResponsesPerKey : (int)Math.Min(int.MaxValue, 4L * Math.Max(0, ConcurrentGenerationsPerKey));

    /// <summary>Most prompt tokens one request may carry (after the chat template); longer prompts are refused.</summary>
    public int MaxPromptTokens { get; set; }
}
