using LlmServer.Engine.Generation;
using LlmServer.Extensions.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;

namespace LlmServer.SemanticKernel;

public static class LlmServerKernelExtensions
{
    /// <summary>
    /// Registers an <see cref="IChatCompletionService"/> over the engine for Semantic Kernel (see the
    /// <see cref="IServiceCollection"/> overload).
    /// </summary>
    public static IKernelBuilder AddLlmServerChatCompletion(this IKernelBuilder builder, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddLlmServerChatCompletion(serviceId);
        return builder;
    }

    /// <summary>
    /// Registers an <see cref="IChatCompletionService"/> (keyed by <paramref name="serviceId"/> when given) over the
    /// registered <see cref="IChatClient"/>, so Semantic Kernel goes through the same middleware pipeline as direct
    /// callers; without one (no <c>AddLlmServerChatClient</c>) it wraps the engine directly. Prompt execution
    /// settings reach the engine through Semantic Kernel's mapping to <see cref="ChatOptions"/>: <c>temperature</c>,
    /// <c>top_p</c>, <c>top_k</c>, <c>max_tokens</c>, <c>stop_sequences</c>, <c>seed</c>, <c>frequency_penalty</c>,
    /// <c>presence_penalty</c>, <c>response_format</c>; other extension data (<c>stop</c>, <c>min_p</c>,
    /// <c>repeat_penalty</c>, <c>penalty_last_n</c>, <c>grammar</c>, <c>ignore_eos</c>) is honoured by the chat client.
    /// <c>FunctionChoiceBehavior</c> offers the kernel's functions as tools; with auto-invoke, Semantic Kernel's
    /// invoker runs the functions the model calls and sends their results back. A refused setting is named in the
    /// <see cref="GenerationException"/>'s message as set: <c>PromptExecutionSettings.ExtensionData["max_tokens"]: ...</c>.
    /// </summary>
    public static IServiceCollection AddLlmServerChatCompletion(this IServiceCollection services, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddKeyedSingleton<IChatCompletionService>(serviceId, static (sp, _) =>
        {
            var client = sp.GetService<IChatClient>() ?? sp.GetRequiredService<ITextGenerator>().AsIChatClient(sp.GetService<TimeProvider>());

            // Semantic Kernel's own invoker runs kernel functions the model calls (FunctionChoiceBehavior with auto-invoke);
            // outermost, refusals name the execution settings rather than the ChatOptions they became.
            return client.AsBuilder()
                .Use(inner => new SettingsFieldNamesChatClient(inner))
                .UseKernelFunctionInvocation(sp.GetService<ILoggerFactory>())
                .Build(sp)
                .AsChatCompletionService(sp);
        });
        return services;
    }
}
