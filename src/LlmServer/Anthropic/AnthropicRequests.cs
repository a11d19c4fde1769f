using System.Text.Json;
using System.Text.Json.Serialization;
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

    public JsonElement? Tools { get; set; }

    public JsonElement? ToolChoice { get; set; }
}

public sealed class AnthropicInputMessage
{
    public string? Role { get; set; }

    /// <summary>A string or an array of text blocks.</summary>
    [JsonConverter(typeof(MessageContentConverter))]
    public string? Content { get; set; }
}
