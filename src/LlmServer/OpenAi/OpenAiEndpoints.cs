using LlmServer.Errors;
using LlmServer.Operations.Limits;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmServer.OpenAi;

public static class OpenAiEndpoints
{
    /// <summary>Registers the OpenAI-compatible API; options come from the <c>OpenAi</c> section, validated at start.</summary>
    public static IServiceCollection AddOpenAiApi(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<OpenAiOptions>().Bind(configuration.GetSection(OpenAiOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OpenAiOptions>, OpenAiOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<OpenAiResponder>();
        services.TryAddSingleton<StalledClients>();
        services.TryAddSingleton<ChatCompletionsEndpoint>();
        services.TryAddSingleton<CompletionsEndpoint>();
        services.TryAddSingleton<ModelAndTokenEndpoints>();

        // The default writer of refusals: every path no other front end claims gets the OpenAI shape.
        services.AddRefusalWriter(string.Empty, new OpenAiRefusalWriter());
        return services;
    }

    /// <summary>Maps the endpoints, and the error handling that gives every <c>/v1</c> answer the OpenAI shape.</summary>
    public static WebApplication MapOpenAiApi(this WebApplication app)
    {
        app.UseMiddleware<OpenAiErrorMiddleware>();
        var chat = app.Services.GetRequiredService<ChatCompletionsEndpoint>();
        var completions = app.Services.GetRequiredService<CompletionsEndpoint>();
        var models = app.Services.GetRequiredService<ModelAndTokenEndpoints>();
        app.MapPost("/v1/chat/completions", chat.HandleAsync).RunsModel();
        app.MapPost("/v1/completions", completions.HandleAsync).RunsModel();
        app.MapGet("/v1/models", models.ListModelsAsync);
        app.MapGet("/v1/models/{**id}", models.GetModelAsync);
        app.MapPost("/tokenize", models.TokenizeAsync).HasOpenAiErrors().WithMetadata(OpenAiFieldNames.TokenizeNames);
        app.MapPost("/detokenize", models.DetokenizeAsync).HasOpenAiErrors();
        app.MapPost("/apply-template", chat.ApplyTemplateAsync).HasOpenAiErrors();
        return app;
    }
}
