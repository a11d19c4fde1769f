using System.Runtime.CompilerServices;
using LlmServer.Engine.Generation;
using LlmServer.Extensions.AI;
using Microsoft.Extensions.AI;

namespace LlmServer.SemanticKernel;

/// <summary>
/// The outermost link of Semantic Kernel's chat pipeline: a refusal the chat client named after
/// <see cref="ChatOptions"/> is named after the prompt execution settings the kernel's caller set instead
/// (<see cref="InProcessFieldNames.PromptExecutionSettings"/>), from the engine's refusal inside it.
/// </summary>
internal sealed class SettingsFieldNamesChatClient(IChatClient inner) : DelegatingChatClient(inner)
{
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        try
        {
            return await base.GetResponseAsync(messages, options, cancellationToken);
        }
        catch (GenerationException refusal) when (Named(refusal, options) is { } named)
        {
            throw named;
        }
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages,
        ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var updates = base.GetStreamingResponseAsync(messages, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await updates.MoveNextAsync())
                {
                    yield break;
                }
            }
            catch (GenerationException refusal) when (Named(refusal, options) is { } named)
            {
                throw named;
            }

            yield return updates.Current;
        }
    }

    private static GenerationException? Named(GenerationException refusal, ChatOptions? options) =>
        refusal.InnerException is GenerationException engine ? InProcessFieldNames.PromptExecutionSettings.Named(engine, options) : null;
}
