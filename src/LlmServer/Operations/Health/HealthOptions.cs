namespace LlmServer.Operations.Health;

/// <summary>Configuration section <c>Health</c>.</summary>
public sealed class HealthOptions
{
    public const string SectionName = "Health";

    /// <summary>With work in flight, readiness fails when no decode step has completed for this long.</summary>
    public int DecodeStallSeconds { get; set; } = 60;
}
