using System.Text.Json.Serialization;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary>Source-generated serialization of the Anthropic Messages wire types.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(MessagesRequest))]
[JsonSerializable(typeof(AnthropicMessage))]
[JsonSerializable(typeof(AnthropicContentBlock))]
[JsonSerializable(typeof(AnthropicResponseBlock))]
[JsonSerializable(typeof(AnthropicUsage))]
[JsonSerializable(typeof(AnthropicTokenCount))]
[JsonSerializable(typeof(AnthropicErrorResponse))]
internal sealed partial class AnthropicJsonContext : JsonSerializerContext;

internal static class AnthropicJson
{
    public static readonly AnthropicJsonContext Context = new(OpenAiJson.CreateOptions());
}
