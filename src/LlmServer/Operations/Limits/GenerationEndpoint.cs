namespace LlmServer.Operations.Limits;

/// <summary>
/// Endpoint metadata: a request to this endpoint runs the model (a generation, or an embedding's forward pass), so it
/// holds one of its key's <c>Limits:ConcurrentGenerationsPerKey</c> permits until its response ends. Each front end
/// marks its own routes where it maps them, so a new endpoint cannot be missed by a separate list of paths.
/// </summary>
internal sealed class GenerationEndpoint
{
    private GenerationEndpoint()
    {
    }

    public static GenerationEndpoint Instance { get; } = new();

    public static bool Runs(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<GenerationEndpoint>() is not null;
}

internal static class GenerationEndpointExtensions
{
    /// <summary>Counts the endpoint's requests against <c>Limits:ConcurrentGenerationsPerKey</c>.</summary>
    public static TBuilder RunsModel<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(GenerationEndpoint.Instance);
}
