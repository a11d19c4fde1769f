using LlmServer.Errors;
using LlmServer.OpenAi;
using LlmServer.Operations.Limits;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LlmServer.Anthropic;

/// <summary>The Anthropic Messages API over the same engine; errors in its own shape (<see cref="AnthropicErrors"/>).</summary>
public static class AnthropicEndpoints
{
    public static IServiceCollection AddAnthropicApi(this IServiceCollection services)
    {
        services.TryAddSingleton<MessagesEndpoint>();
        services.AddRefusalWriter(AnthropicErrors.Path, new AnthropicRefusalWriter());
        return services;
    }

    /// <summary>Maps the endpoints; call after <see cref="OpenAiEndpoints.MapOpenAiApi"/>, whose middleware handles their errors.</summary>
    public static WebApplication MapAnthropicApi(this WebApplication app)
    {
        var messages = app.Services.GetRequiredService<MessagesEndpoint>();
        app.MapPost(AnthropicErrors.Path, messages.HandleAsync).WithMetadata(AnthropicFieldNames.Names).RunsModel();
        app.MapPost("/v1/messages/count_tokens", messages.CountTokensAsync).WithMetadata(AnthropicFieldNames.Names);
        return app;
    }
}
