using System.Text.Json.Serialization;
using LlmServer.OpenAi;

namespace LlmServer.Embeddings;

/// <summary>Source-generated reading of the embeddings request; the answer is written directly (vectors are large).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(EmbeddingsRequest))]
internal sealed partial class EmbeddingsJsonContext : JsonSerializerContext;

internal static class EmbeddingsJson
{
    public static readonly EmbeddingsJsonContext Context = new(OpenAiJson.CreateOptions());
}
