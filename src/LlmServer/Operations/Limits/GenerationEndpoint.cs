namespace LlmServer.Operations.Limits;

/// <summary>
/// Endpoint metadata: a request to this endpoint runs the model (a generation, or an embedding's forward pass), so it
/// takes one of its key's <c>Limits:ConcurrentGenerationsPerKey</c> permits (<see cref="GenerationPermitMiddleware"/>)
/// and holds it until its response ends, or hands it to the generation it starts when that outlives the response.
/// Each front end marks its own routes where it maps them, so a new endpoint cannot be missed by a separate list of paths.
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

/// <summary>
/// The hub method runs the model: each call takes one of its key's <c>Limits:ConcurrentGenerationsPerKey</c>
/// permits (<see cref="GenerationHubFilter"/>), as <see cref="GenerationEndpointExtensions.RunsModel"/> does for a route.
/// A method that only re-attaches to a running generation is not marked: that generation holds its permit already.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
internal sealed class RunsModelAttribute : Attribute;
