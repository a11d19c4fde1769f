using System.Text.Json;
using System.Text.Json.Serialization;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary><c>POST /v1/responses</c>. Unknown fields are ignored.</summary>
public sealed class CreateResponseRequest
{
    public string? Model { get; set; }

    /// <summary>A string (one user message) or a list of input items: messages, function calls and their outputs.</summary>
    [JsonConverter(typeof(ResponseInputConverter))]
    public IReadOnlyList<ResponseInputItem>? Input { get; set; }

    public string? Instructions { get; set; }

    public int? MaxOutputTokens { get; set; }

    public float? Temperature { get; set; }

    public float? TopP { get; set; }

    public ResponseTextRequest? Text { get; set; }

    public bool? Stream { get; set; }

    public bool? Store { get; set; }

    public string? PreviousResponseId { get; set; }

    public IReadOnlyList<ResponseToolRequest?>? Tools { get; set; }

    /// <summary><c>none</c>, <c>auto</c>, <c>required</c>, or <c>{"type":"function","name":...}</c>.</summary>
    public JsonElement? ToolChoice { get; set; }

    public bool? ParallelToolCalls { get; set; }

    /// <summary><c>{"effort","summary"}</c>: effort <c>none</c> turns the template's thinking off; the response echoes both.</summary>
    public ResponseReasoningRequest? Reasoning { get; set; }

    public string? User { get; set; }

    public Dictionary<string, string>? Metadata { get; set; }
}

/// <summary><c>reasoning</c>: how hard a reasoning model should think, and the summary asked for.</summary>
public sealed class ResponseReasoningRequest
{
    /// <summary><c>none</c>, <c>minimal</c>, <c>low</c>, <c>medium</c>, <c>high</c> or <c>xhigh</c>.</summary>
    public string? Effort { get; set; }

    /// <summary><c>auto</c>, <c>concise</c> or <c>detailed</c>: accepted and echoed; no summary is written.</summary>
    public string? Summary { get; set; }
}

/// <summary>
/// One input item: a <c>message</c> (<see cref="Role"/> and its text, parts joined with newlines), a
/// <c>function_call</c> the model made (<see cref="CallId"/>, <see cref="Name"/>, <see cref="Arguments"/>), a
/// <c>function_call_output</c> (<see cref="CallId"/> and the result in <see cref="Output"/>), or a <c>reasoning</c>
/// item of an earlier response (its <c>reasoning_text</c> parts in <see cref="Content"/>, joined with newlines).
/// </summary>
public sealed record ResponseInputItem(string Type)
{
    public const string MessageType = "message";
    public const string FunctionCallType = "function_call";
    public const string FunctionCallOutputType = "function_call_output";
    public const string ReasoningType = "reasoning";

    public string? Role { get; init; }

    public string? Content { get; init; }

    public string? CallId { get; init; }

    public string? Name { get; init; }

    public string? Arguments { get; init; }

    public string? Output { get; init; }

    /// <summary>
    /// The string fields present with another JSON type, and what they held ("an object"): read as absent, so the
    /// mapper refuses them as mistyped rather than missing.
    /// </summary>
    public IReadOnlyDictionary<string, string>? MistypedFields { get; init; }
}

/// <summary>A function tool in the Responses shape: <c>{"type":"function","name","description","parameters","strict"}</c>.</summary>
public sealed class ResponseToolRequest
{
    public string? Type { get; set; }

    public string? Name { get; set; }

    public string? Description { get; set; }

    /// <summary>A JSON schema for the arguments (an object schema).</summary>
    public JsonElement? Parameters { get; set; }

    public bool? Strict { get; set; }
}

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
/// <c>input</c>: a string, or an array of items: messages (<c>{"type":"message","role","content"}</c>, the type
/// optional) whose content is a string or <c>input_text</c>/<c>output_text</c> parts, <c>function_call</c> items,
/// <c>function_call_output</c> items (the output a string or text parts) and <c>reasoning</c> items (their content
/// <c>reasoning_text</c> parts; the summary is not read). Items are read as they are; the mapper refuses other item
/// types and missing fields.
/// </summary>
internal sealed class ResponseInputConverter : JsonConverter<IReadOnlyList<ResponseInputItem>>
{
    private static readonly string[] TextTypes = ["input_text", "output_text"];
    private static readonly string[] ReasoningTextTypes = ["reasoning_text"];

    public override IReadOnlyList<ResponseInputItem>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return [new ResponseInputItem(ResponseInputItem.MessageType) { Role = "user", Content = reader.GetString()! }];
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InvalidFieldException("expected a string or an array of input items.");
        }

        var items = new List<ResponseInputItem>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InvalidFieldException("each input item must be an object such as {\"role\":\"user\",\"content\":\"...\"}.");
            }

            items.Add(ReadItem(ref reader, items.Count));
        }

        return items;
    }

    private static ResponseInputItem ReadItem(ref Utf8JsonReader reader, int index)
    {
        var strings = new Dictionary<string, string>(StringComparer.Ordinal);
        Dictionary<string, string>? mistyped = null;

        // The content and output are read once the type is known (it may come after): a reasoning item's content is
        // reasoning_text parts, and an item whose type is not a string is refused for its type, whatever it holds.
        var contentReader = default(Utf8JsonReader);
        var hasContent = false;
        var outputReader = default(Utf8JsonReader);
        var hasOutput = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var property = reader.GetString()!;
            reader.Read();
            switch (property)
            {
                case "type" or "role" or "call_id" or "name" or "arguments" when reader.TokenType == JsonTokenType.String:
                    strings[property] = reader.GetString()!;
                    break;
                case "type" or "role" or "call_id" or "name" or "arguments" when reader.TokenType != JsonTokenType.Null:
                    (mistyped ??= new(StringComparer.Ordinal))[property] = JsonBodyReader.Describe(reader.TokenType);
                    reader.Skip();
                    break;
                case "content" when reader.TokenType != JsonTokenType.Null:
                    contentReader = reader;
                    hasContent = true;
                    reader.Skip();
                    break;
                case "output" when reader.TokenType != JsonTokenType.Null:
                    outputReader = reader;
                    hasOutput = true;
                    reader.Skip();
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        if (mistyped?.ContainsKey("type") == true)
        {
            // The mapper refuses it (input[i].type) before reading anything else of the item.
            return new ResponseInputItem(ResponseInputItem.MessageType) { MistypedFields = mistyped };
        }

        var type = strings.GetValueOrDefault("type") ?? ResponseInputItem.MessageType;
        var content = !hasContent ? null
            : type != ResponseInputItem.ReasoningType ? ReadText(ref contentReader, index, "content", TextTypes)
            : IsEmptyArray(contentReader) ? null
            : ReadText(ref contentReader, index, "content", ReasoningTextTypes);
        var output = hasOutput ? ReadText(ref outputReader, index, "output", TextTypes) : null;

        // The mapper checks each item's fields, so its refusals name them (input[2].call_id).
        return new ResponseInputItem(type)
        {
            Role = strings.GetValueOrDefault("role"),
            Content = content,
            CallId = strings.GetValueOrDefault("call_id"),
            Name = strings.GetValueOrDefault("name"),
            Arguments = strings.GetValueOrDefault("arguments"),
            Output = output,
            MistypedFields = mistyped,
        };
    }

    /// <summary>
    /// A reasoning item's <c>content: []</c> (OpenAI's items with a summary only): no reasoning, which the mapper
    /// refuses as missing, as llama-server does.
    /// </summary>
    private static bool IsEmptyArray(Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.StartArray && reader.Read() && reader.TokenType == JsonTokenType.EndArray;

    /// <summary>The chat rule for text (<see cref="MessageContentConverter"/>); a refusal names the item's field.</summary>
    private static string ReadText(ref Utf8JsonReader reader, int index, string field, string[] textTypes)
    {
        try
        {
            return MessageContentConverter.ReadText(ref reader, textTypes);
        }
        catch (InvalidFieldException e)
        {
            throw e.Within($"[{index}].{field}");
        }
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<ResponseInputItem> value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Request fields are only read.");
}
