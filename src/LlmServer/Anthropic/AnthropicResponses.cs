namespace LlmServer.Anthropic;

/// <summary>The message object: the whole answer, or (empty, in <c>message_start</c>) the start of a stream.</summary>
public sealed record AnthropicMessage(
    string Id,
    string Type,
    string Role,
    IReadOnlyList<AnthropicTextBlock> Content,
    string Model,
    string? StopReason,
    string? StopSequence,
    AnthropicUsage Usage);

public sealed record AnthropicTextBlock(string Type, string Text);

/// <summary>
/// Token counts as Anthropic reports them: <see cref="InputTokens"/> excludes the prompt tokens served from the
/// KV cache, which are <see cref="CacheReadInputTokens"/>; nothing is ever written to a cache on request.
/// </summary>
public sealed record AnthropicUsage(int InputTokens, int OutputTokens, int CacheCreationInputTokens, int CacheReadInputTokens);

public sealed record AnthropicTokenCount(int InputTokens);

public sealed record AnthropicErrorResponse(string Type, AnthropicErrorDetail Error);

public sealed record AnthropicErrorDetail(string Type, string Message);
