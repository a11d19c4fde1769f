using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.OpenAi;

/// <summary>Source-generated (reflection-free) serialization of every OpenAI wire type.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(TokenizeRequest))]
[JsonSerializable(typeof(DetokenizeRequest))]
[JsonSerializable(typeof(ChatCompletionResponse))]
[JsonSerializable(typeof(CompletionResponse))]
[JsonSerializable(typeof(ChatLogProbs))]
[JsonSerializable(typeof(CompletionLogProbs))]
[JsonSerializable(typeof(Usage))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelCard))]
[JsonSerializable(typeof(TokenizeResponse))]
[JsonSerializable(typeof(TokenizeWithPiecesResponse))]
[JsonSerializable(typeof(DetokenizeResponse))]
[JsonSerializable(typeof(ApplyTemplateResponse))]
[JsonSerializable(typeof(OpenAiErrorResponse))]
internal sealed partial class OpenAiJsonContext : JsonSerializerContext;

internal static class OpenAiJson
{
    /// <summary>
    /// Writes non-ASCII text as UTF-8 rather than \u escapes: the output is JSON for clients, never HTML, and
    /// streamed text stays as small as the tokens.
    /// </summary>
    public static readonly JavaScriptEncoder Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    public static readonly OpenAiJsonContext Context = new(CreateOptions());

    /// <summary>The options every API's source-generated context runs with: snake_case names, UTF-8 text unescaped.</summary>
    public static JsonSerializerOptions CreateOptions() => new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = Encoder,
    };
}
