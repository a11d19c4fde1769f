using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Wraps the engine's <see cref="ITextGenerator"/> so every front end (REST, hub, sessions, in-process clients)
/// gets <c>Limits:MaxPromptTokens</c> without knowing about it: the engine refuses a longer prompt where it tokenizes
/// it, before admission, with <see cref="GenerationErrorCode.ContextLengthExceeded"/> (the prompt is rendered and
/// tokenized once), and refuses a text to tokenize or count that no prompt could hold in the same words.
/// </summary>
internal sealed class PromptLimitingTextGenerator(ITextGenerator inner, IOptions<LimitsOptions> options) : DelegatingTextGenerator(inner)
{
    private readonly PromptTokenLimit? _limit = options.Value.MaxPromptTokens > 0 ? new(options.Value.MaxPromptTokens, "Limits:MaxPromptTokens") : null;

    public override GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default) =>
        base.Submit(Limited(request), cancellationToken);

    /// <summary>A text no prompt of this server could hold is refused as its prompt would be (<c>/tokenize</c>, <c>count_tokens</c>).</summary>
    public override void EnsurePromptCouldFit(GenerationRequest request, string text) => base.EnsurePromptCouldFit(Limited(request), text);

    private GenerationRequest Limited(GenerationRequest request) =>
        _limit is { } limit && (request.PromptLimit is null || request.PromptLimit.MaxTokens > limit.MaxTokens) ? request with { PromptLimit = limit } : request;
}
