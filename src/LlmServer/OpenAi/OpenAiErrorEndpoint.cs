namespace LlmServer.OpenAi;

/// <summary>
/// Endpoint metadata: the route's errors get the OpenAI shape from <see cref="OpenAiErrorMiddleware"/> though it lies
/// outside <c>/v1</c> (llama-server's <c>/tokenize</c>, <c>/detokenize</c>, <c>/apply-template</c>). The routes are
/// marked where they are mapped, so a new one cannot be missed by a separate list of paths.
/// </summary>
internal sealed class OpenAiErrorEndpoint
{
    private OpenAiErrorEndpoint()
    {
    }

    public static OpenAiErrorEndpoint Instance { get; } = new();

    public static bool Marks(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<OpenAiErrorEndpoint>() is not null;
}

internal static class OpenAiErrorEndpointExtensions
{
    /// <summary>Gives the endpoint's errors the OpenAI shape.</summary>
    public static TBuilder HasOpenAiErrors<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(OpenAiErrorEndpoint.Instance);
}
