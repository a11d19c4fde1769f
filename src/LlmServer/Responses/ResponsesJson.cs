using System.Text.Json.Serialization;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary>Source-generated serialization of the Responses API wire types.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(CreateResponseRequest))]
[JsonSerializable(typeof(ResponseObject))]
[JsonSerializable(typeof(ResponseOutputItem))]
[JsonSerializable(typeof(ResponseOutputText))]
[JsonSerializable(typeof(ResponseReasoningText))]
[JsonSerializable(typeof(ResponseDeleted))]
[JsonSerializable(typeof(string))]
internal sealed partial class ResponsesJsonContext : JsonSerializerContext;

internal static class ResponsesJson
{
    public static readonly ResponsesJsonContext Context = new(OpenAiJson.CreateOptions());
}
