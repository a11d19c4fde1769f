using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.Anthropic;

/// <summary>The message object: the whole answer, or (empty, in <c>message_start</c>) the start of a stream.</summary>
public sealed record AnthropicMessage(
    string Id,
    string Type,
    string Role,
    IReadOnlyList<AnthropicResponseBlock> Content,
    string Model,
    string? StopReason,
    string? StopSequence,
    AnthropicUsage Usage);

/// <summary>A content block of the answer: text, or a tool call. Each is written with its own fields.</summary>
[JsonDerivedType(typeof(AnthropicTextBlock))]
[JsonDerivedType(typeof(AnthropicToolUseBlock))]
[JsonDerivedType(typeof(AnthropicThinkingBlock))]
public abstract record AnthropicResponseBlock([property: JsonPropertyOrder(-1)] string Type);

/// <summary>
/// The model's reasoning (its <c>&lt;think&gt;</c> block). <see cref="Signature"/> is empty: nothing here signs it,
/// and a thinking block sent back in the history is not checked (it is dropped from the prompt).
/// </summary>
public sealed record AnthropicThinkingBlock(string Thinking, string Signature) : AnthropicResponseBlock("thinking");

public sealed record AnthropicTextBlock(string Text) : AnthropicResponseBlock("text");

/// <summary>A call the model made: <see cref="Input"/> is its arguments object; the <c>tool_result</c> answering it names <see cref="Id"/>.</summary>
public sealed record AnthropicToolUseBlock(string Id, string Name, JsonElement Input) : AnthropicResponseBlock("tool_use");

/// <summary>
/// Token counts as Anthropic reports them: <see cref="InputTokens"/> excludes the prompt tokens served from the
/// KV cache, which are <see cref="CacheReadInputTokens"/>; nothing is ever written to a cache on request.
/// </summary>
public sealed record AnthropicUsage(int InputTokens, int OutputTokens, int CacheCreationInputTokens, int CacheReadInputTokens);

public sealed record AnthropicTokenCount(int InputTokens);

public sealed record AnthropicErrorResponse(string Type, AnthropicErrorDetail Error);

public sealed record AnthropicErrorDetail(string Type, string Message);
