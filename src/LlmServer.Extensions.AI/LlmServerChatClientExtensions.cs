using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Extensions.AI;

public static class LlmServerChatClientExtensions
{
    /// <summary>
    /// An <see cref="IChatClient"/> over the engine. Options it maps: temperature, top_p, top_k, max output tokens,
    /// stop sequences, seed, frequency and presence penalties, JSON response format (with or without a schema),
    /// <see cref="ChatOptions.ConversationId"/> as the KV-cache session key, and the additional properties
    /// <c>min_p</c>, <c>repeat_penalty</c>, <c>penalty_last_n</c>, <c>stop</c>, <c>grammar</c> and <c>ignore_eos</c>.
    /// </summary>
    public static IChatClient AsIChatClient(this ITextGenerator generator, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        return new LlmServerChatClient(generator, timeProvider ?? TimeProvider.System);
    }

    /// <summary>
    /// Registers <see cref="IChatClient"/> over the engine registered by <c>AddLlmServerEngine</c>. The returned
    /// builder adds middleware (<c>.UseLogging().UseOpenTelemetry()</c>); the first added is the outermost.
    /// </summary>
    public static ChatClientBuilder AddLlmServerChatClient(this IServiceCollection services, ServiceLifetime lifetime = ServiceLifetime.Singleton)
    {
        ArgumentNullException.ThrowIfNull(services);
        return services.AddChatClient(sp => sp.GetRequiredService<ITextGenerator>().AsIChatClient(sp.GetService<TimeProvider>()), lifetime);
    }

    /// <summary>
    /// Waits until the engine serves (the model loads in the background after the host starts), on the engine's
    /// state-change event. Throws <see cref="InvalidOperationException"/> when it faulted (with the load's failure, such
    /// as a missing model file), stopped or began draining instead; <paramref name="cancellationToken"/> bounds the wait.
    /// </summary>
    public static async Task WaitUntilReadyAsync(this ITextGenerator generator, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(generator);
        var state = generator.State;
        while (state == EngineState.Loading)
        {
            state = await generator.WaitForStateChangeAsync(state, cancellationToken);
        }

        if (state != EngineState.Ready)
        {
            throw generator.LoadFailure is { } failure
                ? new InvalidOperationException($"The engine is {state} and will not serve: {failure.Message}", failure)
                : new InvalidOperationException($"The engine is {state} and will not serve.");
        }
    }
}
