using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Wraps the engine's <see cref="ITextGenerator"/> so every front end (REST, hub, sessions, in-process clients)
/// gets <c>Limits:MaxPromptTokens</c> without knowing about it: the engine refuses a longer prompt where it tokenizes
/// it, before admission, with <see cref="GenerationErrorCode.ContextLengthExceeded"/> (the prompt is rendered and
/// tokenized once).
/// </summary>
internal sealed class PromptLimitingTextGenerator(ITextGenerator inner, IOptions<LimitsOptions> options) : DelegatingTextGenerator(inner)
{
    private readonly PromptTokenLimit? _limit = options.Value.MaxPromptTokens > 0 ? new(options.Value.MaxPromptTokens, "Limits:MaxPromptTokens") : null;

    public override GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default) =>
        base.Submit(_limit is { } limit && (request.PromptLimit is null || request.PromptLimit.MaxTokens > limit.MaxTokens) ? request with { PromptLimit = limit } : request, cancellationToken);
}
