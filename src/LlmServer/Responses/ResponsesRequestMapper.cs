using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.Models;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary>Checks Responses fields and maps them onto the engine's request; refusals are 400s naming the field.</summary>
internal static class ResponsesRequestMapper
{
    private const string SchemaParam = "text.format.schema";

    /// <summary>The conversation of this response: the previous one's (when continuing), then this input.</summary>
    public static List<ChatTurn> Conversation(CreateResponseRequest request, StoredResponse? previous)
    {
        OpenAiRequestMapper.RefuseTools(request.Tools, "tools");
        OpenAiRequestMapper.RefuseTools(request.ToolChoice, "tool_choice");
        var input = request.Input ?? throw OpenAiException.InvalidField("input", "'input' is required.");
        if (input.Count == 0)
        {
            throw OpenAiException.InvalidField("input", "'input' must contain at least one message.");
        }

        var turns = new List<ChatTurn>(previous?.Conversation ?? []);
        for (var i = 0; i < input.Count; i++)
        {
            var role = input[i].Role switch
            {
                "system" or "developer" => "system",
                "user" or "assistant" => input[i].Role,
                _ => throw OpenAiException.InvalidField(
                    $"input[{i}].role",
                    $"Invalid value for input[{i}].role: '{input[i].Role}'. Supported roles are system, developer, user and assistant."),
            };
            turns.Add(new ChatTurn(role, input[i].Content));
        }

        return turns;
    }

    public static GenerationRequest Map(CreateResponseRequest request, IReadOnlyList<ChatTurn> conversation, ModelInfo model, string requestId, string? sessionKey)
    {
        var defaults = new SamplingOptions();
        IReadOnlyList<ChatTurn> messages = string.IsNullOrEmpty(request.Instructions)
            ? conversation
            : [new ChatTurn("system", request.Instructions), .. conversation];
        return new GenerationRequest
        {
            Messages = messages,
            MaxTokens = OpenAiRequestMapper.MaxTokens(request.MaxOutputTokens, "max_output_tokens", model),
            Sampling = new SamplingOptions
            {
                Temperature = OpenAiRequestMapper.InRange(request.Temperature, "temperature", GenerationLimits.Temperature) ?? defaults.Temperature,
                TopP = OpenAiRequestMapper.TopP(request.TopP) ?? defaults.TopP,
            },
            Grammar = Grammar(request.Text?.Format),
            SessionKey = sessionKey,
            RequestId = requestId,
        };
    }

    /// <summary>The <c>text</c> object the response echoes.</summary>
    public static ResponseTextInfo TextInfo(ResponseTextFormatRequest? format) => new(format is null or { Type: null }
        ? new ResponseTextFormatInfo("text", null, null, null)
        : new ResponseTextFormatInfo(format.Type, format.Name, format.Schema, format.Strict));

    private static string? Grammar(ResponseTextFormatRequest? format) => format is null ? null : format.Type switch
    {
        null or "text" => null,
        "json_object" => JsonGrammar.AnyObject,
        "json_schema" => format.Schema is { } schema
            ? OpenAiRequestMapper.SchemaGrammar(schema, SchemaParam)
            : throw OpenAiException.InvalidField(SchemaParam, "'text.format.schema' is required for type json_schema."),
        _ => throw OpenAiException.InvalidField(
            "text.format.type",
            $"Invalid value for 'text.format.type': '{format.Type}'. Supported values are text, json_object and json_schema."),
    };
}
