using LlmServer.Operations.Limits;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmServer.Responses;

/// <summary>The OpenAI Responses API over the same engine; errors use the OpenAI shape through the shared writer.</summary>
public static class ResponsesEndpoints
{
    public static IServiceCollection AddResponsesApi(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ResponsesOptions>().Bind(configuration.GetSection(ResponsesOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ResponsesOptions>, ResponsesOptionsValidator>());
        services.TryAddSingleton<ResponseStore>();
        services.TryAddSingleton<ResponsesEndpoint>();
        return services;
    }

    public static WebApplication MapResponsesApi(this WebApplication app)
    {
        var responses = app.Services.GetRequiredService<ResponsesEndpoint>();
        var store = app.Services.GetRequiredService<ResponseStore>();

        // Before the engine stops, so its shutdown save skips the chains: the in-memory store does not outlive the process.
        app.Lifetime.ApplicationStopping.Register(store.ForgetAllChains);
        app.MapPost("/v1/responses", responses.CreateAsync).WithMetadata(ResponsesFieldNames.Names).RunsModel();
        app.MapGet("/v1/responses/{id}", responses.GetAsync);
        app.MapDelete("/v1/responses/{id}", responses.DeleteAsync);
        return app;
    }
}
