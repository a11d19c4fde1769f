using LlmServer.Operations.Limits;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LlmServer.Embeddings;

/// <summary>The OpenAI embeddings endpoint over the engine's embedding context.</summary>
public static class EmbeddingsEndpoints
{
    public static IServiceCollection AddEmbeddingsApi(this IServiceCollection services)
    {
        services.TryAddSingleton<EmbeddingsEndpoint>();
        return services;
    }

    public static WebApplication MapEmbeddingsApi(this WebApplication app)
    {
        app.MapPost("/v1/embeddings", app.Services.GetRequiredService<EmbeddingsEndpoint>().HandleAsync).RunsModel();
        return app;
    }
}
