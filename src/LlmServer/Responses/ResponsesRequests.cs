using System.Text.Json;
using System.Text.Json.Serialization;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary><c>POST /v1/responses</c>. Unknown fields are ignored.</summary>
public sealed class CreateResponseRequest
{
    public string? Model { get; set; }

    /// <summary>A string (one user message) or a list of message items.</summary>
    [JsonConverter(typeof(ResponseInputConverter))]
    public IReadOnlyList<ResponseInputMessage>? Input { get; set; }

    public string? Instructions { get; set; }

    public int? MaxOutputTokens { get; set; }

    public float? Temperature { get; set; }

    public float? TopP { get; set; }

    public ResponseTextRequest? Text { get; set; }

    public bool? Stream { get; set; }

    public bool? Store { get; set; }

    public string? PreviousResponseId { get; set; }

    public JsonElement? Tools { get; set; }

    public JsonElement? ToolChoice { get; set; }

    public string? User { get; set; }

    public Dictionary<string, string>? Metadata { get; set; }
}

/// <summary>One input message: a role and its text (parts joined with newlines).</summary>
public sealed record ResponseInputMessage(string Role, string Content);

public sealed class ResponseTextRequest
{
    public ResponseTextFormatRequest? Format { get; set; }
}

/// <summary><c>text.format</c>: <c>text</c>, <c>json_object</c>, or <c>json_schema</c> with the schema inline.</summary>
public sealed class ResponseTextFormatRequest
{
    public string? Type { get; set; }

    public string? Name { get; set; }

    public JsonElement? Schema { get; set; }

    public bool? Strict { get; set; }
}

/// <summary>
/// <c>input</c>: a string, or an array of message items (<c>{"type":"message","role","content"}</c>, the type
/// optional) whose content is a string or <c>input_text</c>/<c>output_text</c> parts. Other item types are refused.
/// </summary>
internal sealed class ResponseInputConverter : JsonConverter<IReadOnlyList<ResponseInputMessage>>
{
    private static readonly string[] TextTypes = ["input_text", "output_text"];

    public override IReadOnlyList<ResponseInputMessage>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return [new ResponseInputMessage("user", reader.GetString()!)];
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InvalidFieldException("expected a string or an array of input items.");
        }

        var items = new List<ResponseInputMessage>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InvalidFieldException("each input item must be an object such as {\"role\":\"user\",\"content\":\"...\"}.");
            }

            string? type = null;
            string? role = null;
            string? content = null;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var name = reader.GetString();
                reader.Read();
                switch (name)
                {
                    case "type" when reader.TokenType == JsonTokenType.String:
                        type = reader.GetString();
                        break;
                    case "role" when reader.TokenType == JsonTokenType.String:
                        role = reader.GetString();
                        break;
                    case "content" when reader.TokenType != JsonTokenType.Null:
                        content = MessageContentConverter.ReadText(ref reader, TextTypes);
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (type is not (null or "message"))
            {
                throw new InvalidFieldException($"input items of type '{type}' are not supported; only message items are.");
            }

            if (role is null || content is null)
            {
                throw new InvalidFieldException("each input message needs a string \"role\" and its \"content\".");
            }

            items.Add(new ResponseInputMessage(role, content));
        }

        return items;
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<ResponseInputMessage> value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Request fields are only read.");
}
