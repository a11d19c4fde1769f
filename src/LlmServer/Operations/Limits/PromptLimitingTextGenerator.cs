using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Wraps the engine's <see cref="ITextGenerator"/> so every front end (REST, hub, sessions, in-process clients)
/// gets <c>Limits:MaxPromptTokens</c> without knowing about it: a longer prompt is refused before admission
/// with <see cref="GenerationErrorCode.ContextLengthExceeded"/>.
/// </summary>
internal sealed class PromptLimitingTextGenerator(ITextGenerator inner, IOptions<LimitsOptions> options) : ITextGenerator
{
    private readonly int _maxPromptTokens = options.Value.MaxPromptTokens;

    public EngineState State => inner.State;

    public ModelInfo? Model => inner.Model;

    public SchedulerStatus GetStatus() => inner.GetStatus();

    public string ApplyChatTemplate(IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, bool addAssistantPrompt = true) =>
        inner.ApplyChatTemplate(messages, tools, addAssistantPrompt);

    public string RenderPrompt(GenerationRequest request) => inner.RenderPrompt(request);

    public IReadOnlyList<int> Tokenize(string text, bool addSpecial = false, bool parseSpecial = false) => inner.Tokenize(text, addSpecial, parseSpecial);

    public string Detokenize(IEnumerable<int> tokens) => inner.Detokenize(tokens);

    public GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        // Before the model is loaded the engine refuses the request itself (Unavailable); there is nothing to count with.
        if (_maxPromptTokens > 0 && inner.State == EngineState.Ready && (request.Prompt is null) != (request.Messages is null))
        {
            int tokens;
            string parameter;
            try
            {
                (tokens, parameter) = CountPromptTokens(request);
            }
            catch (GenerationException)
            {
                // The request itself is at fault (or the engine just stopped): the engine reports that in its own words.
                return inner.Submit(request, cancellationToken);
            }

            if (tokens > _maxPromptTokens)
            {
                throw new GenerationException(
                    GenerationErrorCode.ContextLengthExceeded,
                    $"This request's prompt has {tokens} tokens; this server accepts at most {_maxPromptTokens} prompt tokens per request (Limits:MaxPromptTokens).",
                    parameter)
                {
                    // ContextLength stays unset: the limit is the operator's, not the slot's, and the message says so.
                    PromptTokens = tokens,
                };
            }
        }

        return inner.Submit(request, cancellationToken);
    }

    public void EvictSession(string sessionKey) => inner.EvictSession(sessionKey);

    public Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => inner.DrainAsync(timeout, cancellationToken);

    private (int Tokens, string Parameter) CountPromptTokens(GenerationRequest request)
    {
        // Counted as the engine tokenizes at admission, so the limit matches the usage the client is billed.
        return request.Messages is not null
            ? (inner.Tokenize(inner.RenderPrompt(request), addSpecial: true, parseSpecial: true).Count, "messages")
            : (inner.Tokenize(request.Prompt!, addSpecial: true).Count, "prompt");
    }
}
