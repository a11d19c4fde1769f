using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.OpenAi;

/// <summary>Fields <c>/v1/chat/completions</c> and <c>/v1/completions</c> share. Unknown fields are ignored.</summary>
public abstract class SamplingRequest
{
    public string? Model { get; set; }

    public bool? Stream { get; set; }

    public StreamOptions? StreamOptions { get; set; }

    public int? MaxTokens { get; set; }

    public float? Temperature { get; set; }

    public float? TopP { get; set; }

    public float? FrequencyPenalty { get; set; }

    public float? PresencePenalty { get; set; }

    public long? Seed { get; set; }

    [JsonConverter(typeof(StringOrStringArrayConverter))]
    public IReadOnlyList<string>? Stop { get; set; }

    public int? N { get; set; }

    public string? User { get; set; }

    /// <summary>Extension (llama-server): keep only the K most likely tokens.</summary>
    public int? TopK { get; set; }

    /// <summary>Extension (llama-server): drop tokens less likely than min_p times the most likely one.</summary>
    public float? MinP { get; set; }

    /// <summary>Extension (llama-server): multiplicative repetition penalty.</summary>
    public float? RepeatPenalty { get; set; }

    /// <summary>Extension (llama-server): keep generating past end-of-generation tokens.</summary>
    public bool? IgnoreEos { get; set; }

    /// <summary>Token id (as a string) to a bias from -100 to 100, added to its logit before sampling.</summary>
    public Dictionary<string, float>? LogitBias { get; set; }
}

public sealed class StreamOptions
{
    public bool? IncludeUsage { get; set; }
}

public sealed class ChatCompletionRequest : SamplingRequest
{
    public IReadOnlyList<ChatMessage?>? Messages { get; set; }

    public int? MaxCompletionTokens { get; set; }

    public bool? Logprobs { get; set; }

    public int? TopLogprobs { get; set; }

    public ResponseFormat? ResponseFormat { get; set; }

    public IReadOnlyList<ChatTool?>? Tools { get; set; }

    /// <summary><c>none</c>, <c>auto</c>, <c>required</c>, or <c>{"type":"function","function":{"name":...}}</c>.</summary>
    public JsonElement? ToolChoice { get; set; }

    public bool? ParallelToolCalls { get; set; }

    /// <summary>
    /// Extension (llama-server): <c>auto</c> or <c>deepseek</c> (the default) parts a <c>&lt;think&gt;</c> block into
    /// <c>reasoning_content</c>; <c>none</c> leaves it in <c>content</c>.
    /// </summary>
    public string? ReasoningFormat { get; set; }

    /// <summary>Extension (llama-server): variables for the chat template; only <c>enable_thinking</c> (a boolean) is read.</summary>
    public JsonElement? ChatTemplateKwargs { get; set; }
}

public sealed class ChatMessage
{
    public string? Role { get; set; }

    /// <summary>A string, or an array of text parts (joined with newlines).</summary>
    [JsonConverter(typeof(MessageContentConverter))]
    public string? Content { get; set; }

    public string? Name { get; set; }

    /// <summary>On an assistant message: the calls it made.</summary>
    public IReadOnlyList<ChatToolCall?>? ToolCalls { get; set; }

    /// <summary>On a tool message: the call it answers.</summary>
    public string? ToolCallId { get; set; }

    /// <summary>
    /// Extension (llama-server): on an assistant message, the reasoning its answer came with (as
    /// <c>message.reasoning_content</c> returned it), passed to the chat template; ignored on other roles.
    /// </summary>
    public string? ReasoningContent { get; set; }
}

/// <summary>A tool offered to the model: <c>{"type":"function","function":{...}}</c>.</summary>
public sealed class ChatTool
{
    public string? Type { get; set; }

    public ChatFunction? Function { get; set; }
}

public sealed class ChatFunction
{
    public string? Name { get; set; }

    public string? Description { get; set; }

    /// <summary>A JSON schema for the arguments (an object schema).</summary>
    public JsonElement? Parameters { get; set; }

    public bool? Strict { get; set; }
}

/// <summary>A call in an assistant message of the history, as OpenAI returned it.</summary>
public sealed class ChatToolCall
{
    public string? Id { get; set; }

    public string? Type { get; set; }

    public ChatFunctionCall? Function { get; set; }
}

public sealed class ChatFunctionCall
{
    public string? Name { get; set; }

    /// <summary>The arguments as JSON text.</summary>
    public string? Arguments { get; set; }
}

public sealed class ResponseFormat
{
    public string? Type { get; set; }

    public JsonSchemaFormat? JsonSchema { get; set; }
}

public sealed class JsonSchemaFormat
{
    public string? Name { get; set; }

    public JsonElement? Schema { get; set; }

    public bool? Strict { get; set; }
}

public sealed class CompletionRequest : SamplingRequest
{
    /// <summary>A string or an array of strings (one completion per string).</summary>
    [JsonConverter(typeof(PromptConverter))]
    public IReadOnlyList<string>? Prompt { get; set; }

    /// <summary>0 to 5: how many most likely alternatives to report per token.</summary>
    public int? Logprobs { get; set; }

    public bool? Echo { get; set; }

    public string? Suffix { get; set; }

    public int? BestOf { get; set; }
}

public sealed class TokenizeRequest
{
    public string? Content { get; set; }

    public bool? AddSpecial { get; set; }

    public bool? ParseSpecial { get; set; }

    public bool? WithPieces { get; set; }
}

public sealed class DetokenizeRequest
{
    public IReadOnlyList<int>? Tokens { get; set; }
}
