using System.Text.Json;
using System.Text.Json.Serialization;
using LlmServer.Engine.Embeddings;
using LlmServer.OpenAi;

namespace LlmServer.Embeddings;

/// <summary><c>POST /v1/embeddings</c>. Unknown fields are ignored.</summary>
public sealed class EmbeddingsRequest
{
    public string? Model { get; set; }

    /// <summary>A string, an array of strings, an array of token ids, or an array of token-id arrays.</summary>
    [JsonConverter(typeof(EmbeddingInputConverter))]
    public IReadOnlyList<EmbeddingInput>? Input { get; set; }

    public string? EncodingFormat { get; set; }

    public int? Dimensions { get; set; }

    public string? User { get; set; }
}

/// <summary>Reads every form of <c>input</c> OpenAI accepts.</summary>
internal sealed class EmbeddingInputConverter : JsonConverter<IReadOnlyList<EmbeddingInput>>
{
    private const string Expected = "expected a string, an array of strings, an array of token ids, or an array of token-id arrays.";

    public override IReadOnlyList<EmbeddingInput>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return [new EmbeddingInput(reader.GetString(), null)];
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InvalidFieldException(Expected);
        }

        var inputs = new List<EmbeddingInput>();
        List<int>? singleTokens = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String when singleTokens is null:
                    inputs.Add(new EmbeddingInput(reader.GetString(), null));
                    break;
                case JsonTokenType.Number when inputs.Count == 0:
                    (singleTokens ??= []).Add(TokenId(ref reader));
                    break;
                case JsonTokenType.StartArray when singleTokens is null:
                    var tokens = new List<int>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        tokens.Add(reader.TokenType == JsonTokenType.Number ? TokenId(ref reader) : throw new InvalidFieldException(Expected));
                    }

                    inputs.Add(new EmbeddingInput(null, tokens));
                    break;
                default:
                    throw new InvalidFieldException(Expected);
            }
        }

        return singleTokens is null ? inputs : [new EmbeddingInput(null, singleTokens)];
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<EmbeddingInput> value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Request fields are only read.");

    private static int TokenId(ref Utf8JsonReader reader) =>
        reader.TryGetInt32(out var id) ? id : throw new InvalidFieldException("token ids must be integers.");
}
