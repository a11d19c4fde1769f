using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.OpenAi;

/// <summary>
/// A JSON value of the wrong shape; its message is the one the client sees. <see cref="Subfield"/> names the field
/// below the one the serializer was reading, where a converter reads a whole list (<c>[2].content</c> of <c>input</c>).
/// </summary>
internal sealed class InvalidFieldException(string message, string subfield = "", Exception? inner = null) : JsonException(message, inner)
{
    public string Subfield { get; } = subfield;

    /// <summary>The same refusal, for the value at <paramref name="field"/> below the field being read.</summary>
    public InvalidFieldException Within(string field) => new(Message, field + Subfield, this);
}

/// <summary><c>"stop": "x"</c> or <c>"stop": ["x", "y"]</c>.</summary>
internal sealed class StringOrStringArrayConverter : JsonConverter<IReadOnlyList<string>>
{
    public override IReadOnlyList<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        ReadStrings(ref reader, refuseTokenArrays: false);

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<string> value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Request fields are only read.");

    /// <summary>A string or an array of strings; with <paramref name="refuseTokenArrays"/>, numbers name token arrays.</summary>
    internal static IReadOnlyList<string> ReadStrings(ref Utf8JsonReader reader, bool refuseTokenArrays)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return [reader.GetString()!];
            case JsonTokenType.StartArray:
                var items = new List<string>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (refuseTokenArrays && reader.TokenType is JsonTokenType.Number or JsonTokenType.StartArray)
                    {
                        throw new InvalidFieldException("token arrays are not supported; send the prompt as text.");
                    }

                    if (reader.TokenType != JsonTokenType.String)
                    {
                        throw new InvalidFieldException("expected a string or an array of strings.");
                    }

                    items.Add(reader.GetString()!);
                }

                return items;
            default:
                throw new InvalidFieldException("expected a string or an array of strings.");
        }
    }
}

/// <summary><c>"prompt"</c>: a string or an array of strings; token arrays are refused by name.</summary>
internal sealed class PromptConverter : JsonConverter<IReadOnlyList<string>>
{
    public override IReadOnlyList<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        StringOrStringArrayConverter.ReadStrings(ref reader, refuseTokenArrays: true);

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<string> value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Request fields are only read.");
}

/// <summary>Message <c>content</c>: a string, null, or an array of <c>{"type":"text","text":...}</c> parts.</summary>
internal sealed class MessageContentConverter : JsonConverter<string>
{
    private static readonly string[] ChatTextTypes = ["text"];

    public override bool HandleNull => false;

    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        ReadText(ref reader, ChatTextTypes);

    /// <summary>
    /// A string, or an array of text parts joined with newlines; <paramref name="textTypes"/> are the part types
    /// that carry text (chat and Anthropic: <c>text</c>; Responses: <c>input_text</c>, <c>output_text</c>).
    /// </summary>
    internal static string ReadText(ref Utf8JsonReader reader, IReadOnlyList<string> textTypes)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return reader.GetString()!;
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InvalidFieldException("expected a string or an array of content parts.");
        }

        var text = new StringBuilder();
        var parts = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InvalidFieldException($"each content part must be an object such as {{\"type\":\"{textTypes[0]}\",\"text\":\"...\"}}.");
            }

            string? type = null;
            string? partText = null;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var name = reader.GetString();
                reader.Read();
                if (name == "type" && reader.TokenType == JsonTokenType.String)
                {
                    type = reader.GetString();
                }
                else if (name == "text" && reader.TokenType == JsonTokenType.String)
                {
                    partText = reader.GetString();
                }
                else
                {
                    reader.Skip();
                }
            }

            var isText = type is not null && textTypes.Contains(type);
            if (!isText || partText is null)
            {
                throw new InvalidFieldException(type is null || isText
                    ? $"a text content part needs \"type\": \"{textTypes[0]}\" and a string \"text\"."
                    : $"content parts of type '{type}' are not supported; only {string.Join(" and ", textTypes)} parts are.");
            }

            if (parts++ > 0)
            {
                text.Append('\n');
            }

            text.Append(partText);
        }

        return text.ToString();
    }

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Request fields are only read.");
}
