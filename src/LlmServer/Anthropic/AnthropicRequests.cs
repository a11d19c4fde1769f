using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary><c>POST /v1/messages</c> (and <c>/v1/messages/count_tokens</c>). Unknown fields are ignored.</summary>
public sealed class MessagesRequest
{
    public string? Model { get; set; }

    public int? MaxTokens { get; set; }

    /// <summary>A string or an array of text blocks (joined with newlines).</summary>
    [JsonConverter(typeof(MessageContentConverter))]
    public string? System { get; set; }

    public IReadOnlyList<AnthropicInputMessage?>? Messages { get; set; }

    public IReadOnlyList<string>? StopSequences { get; set; }

    public float? Temperature { get; set; }

    public float? TopP { get; set; }

    public int? TopK { get; set; }

    public bool? Stream { get; set; }

    public IReadOnlyList<AnthropicTool?>? Tools { get; set; }

    public AnthropicToolChoice? ToolChoice { get; set; }

    /// <summary><c>{"type": "enabled" | "adaptive" | "disabled", "budget_tokens"}</c>: disabled renders the template's <c>enable_thinking</c> false.</summary>
    public AnthropicThinking? Thinking { get; set; }
}

public sealed class AnthropicThinking
{
    public string? Type { get; set; }

    /// <summary>Accepted for Anthropic's clients and ignored: nothing cuts the reasoning short.</summary>
    public int? BudgetTokens { get; set; }
}

public sealed class AnthropicInputMessage
{
    public string? Role { get; set; }

    /// <summary>A string (one text block) or an array of content blocks.</summary>
    [JsonConverter(typeof(AnthropicContentConverter))]
    public IReadOnlyList<AnthropicContentBlock?>? Content { get; set; }
}

/// <summary>
/// A content block of a request message: <c>text</c> (<see cref="Text"/>), an assistant's <c>tool_use</c>
/// (<see cref="Id"/>, <see cref="Name"/>, <see cref="Input"/>) or a user's <c>tool_result</c>
/// (<see cref="ToolUseId"/>, <see cref="Content"/>, <see cref="IsError"/>). Other types are refused by the mapper.
/// </summary>
public sealed class AnthropicContentBlock
{
    public string? Type { get; set; }

    public string? Text { get; set; }

    public string? Id { get; set; }

    public string? Name { get; set; }

    public JsonElement? Input { get; set; }

    public string? ToolUseId { get; set; }

    /// <summary>A tool result: a string or an array of text blocks.</summary>
    [JsonConverter(typeof(MessageContentConverter))]
    public string? Content { get; set; }

    public bool? IsError { get; set; }
}

/// <summary>A client tool: <c>{"name","description","input_schema"}</c> (<c>type</c> absent or <c>custom</c>).</summary>
public sealed class AnthropicTool
{
    public string? Type { get; set; }

    public string? Name { get; set; }

    public string? Description { get; set; }

    public JsonElement? InputSchema { get; set; }
}

/// <summary><c>{"type": "auto" | "any" | "tool" | "none", "name", "disable_parallel_tool_use"}</c>.</summary>
public sealed class AnthropicToolChoice
{
    public string? Type { get; set; }

    public string? Name { get; set; }

    public bool? DisableParallelToolUse { get; set; }
}

/// <summary>Message <c>content</c>: a string, taken as one text block, or an array of blocks.</summary>
internal sealed class AnthropicContentConverter : JsonConverter<IReadOnlyList<AnthropicContentBlock?>>
{
    public override IReadOnlyList<AnthropicContentBlock?>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return [new AnthropicContentBlock { Type = "text", Text = reader.GetString() }];
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InvalidFieldException("expected a string or an array of content blocks.");
        }

        var blockInfo = (JsonTypeInfo<AnthropicContentBlock>)options.GetTypeInfo(typeof(AnthropicContentBlock));
        var blocks = new List<AnthropicContentBlock?>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InvalidFieldException("each content block must be an object such as {\"type\":\"text\",\"text\":\"...\"}.");
            }

            blocks.Add(JsonSerializer.Deserialize(ref reader, blockInfo));
        }

        return blocks;
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<AnthropicContentBlock?> value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Request fields are only read.");
}
