using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.Models;
using LlmServer.Engine.Tools;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary>Checks Responses fields and maps them onto the engine's request; refusals are 400s naming the field.</summary>
internal static class ResponsesRequestMapper
{
    private const string SchemaParam = "text.format.schema";

    /// <summary>
    /// The conversation of this response: the previous one's (when continuing), then this input. Function calls
    /// join the assistant turn before them (or make one); a function call's output becomes a tool turn, and must
    /// answer a call the conversation holds. As OpenAI requires, every call in the conversation has its output.
    /// </summary>
    public static List<ChatTurn> Conversation(CreateResponseRequest request, StoredResponse? previous)
    {
        var input = request.Input ?? throw OpenAiException.InvalidField("input", "'input' is required.");
        if (input.Count == 0)
        {
            throw OpenAiException.InvalidField("input", "'input' must contain at least one message.");
        }

        var turns = new List<ChatTurn>(previous?.Conversation ?? []);
        var callIds = turns.SelectMany(t => t.ToolCalls ?? []).Select(c => c.Id).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < input.Count; i++)
        {
            var item = input[i];
            switch (item.Type)
            {
                case ResponseInputItem.FunctionCallType:
                    var call = new ToolCall(item.CallId!, item.Name!, item.Arguments!);
                    callIds.Add(call.Id);
                    if (turns is [.., { Role: "assistant" } last])
                    {
                        turns[^1] = last with { ToolCalls = [.. last.ToolCalls ?? [], call] };
                    }
                    else
                    {
                        turns.Add(new ChatTurn("assistant", null) { ToolCalls = [call] });
                    }

                    break;
                case ResponseInputItem.FunctionCallOutputType:
                    if (!callIds.Contains(item.CallId!))
                    {
                        throw OpenAiException.InvalidField(
                            $"input[{i}].call_id",
                            $"No function call found for the function_call_output with call_id '{item.CallId}': send the function_call item, or continue its response with 'previous_response_id'.");
                    }

                    turns.Add(new ChatTurn("tool", item.Output) { ToolCallId = item.CallId });
                    break;
                default:
                    var role = item.Role switch
                    {
                        "system" or "developer" => "system",
                        "user" or "assistant" => item.Role,
                        _ => throw OpenAiException.InvalidField(
                            $"input[{i}].role",
                            $"Invalid value for input[{i}].role: '{item.Role}'. Supported roles are system, developer, user and assistant."),
                    };
                    turns.Add(new ChatTurn(role, item.Content));
                    break;
            }
        }

        var answered = turns.Where(t => t.Role == "tool").Select(t => t.ToolCallId).ToHashSet(StringComparer.Ordinal);
        if (turns.SelectMany(t => t.ToolCalls ?? []).FirstOrDefault(c => !answered.Contains(c.Id)) is { } unanswered)
        {
            throw OpenAiException.InvalidField(
                "input",
                $"No tool output found for function call {unanswered.Id}: send its result as a function_call_output item with that call_id.");
        }

        return turns;
    }

    public static GenerationRequest Map(CreateResponseRequest request, IReadOnlyList<ChatTurn> conversation, ModelInfo model, string requestId, string? sessionKey)
    {
        var defaults = new SamplingOptions();
        IReadOnlyList<ChatTurn> messages = string.IsNullOrEmpty(request.Instructions)
            ? conversation
            : [new ChatTurn("system", request.Instructions), .. conversation];
        var generation = new GenerationRequest
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
            Tools = Tools(request.Tools),
            ToolChoice = OpenAiRequestMapper.ToolChoice(request.ToolChoice, flat: true),
            ParallelToolCalls = request.ParallelToolCalls ?? true,
        };
        ToolRequestChecks.Validate(generation.Tools, generation.ToolChoice, generation.Grammar is not null);
        return generation;
    }

    /// <summary>The tools the response echoes (checked by then).</summary>
    public static IReadOnlyList<ResponseToolInfo> ToolsInfo(IReadOnlyList<ResponseToolRequest?>? tools) =>
        tools?.Select(t => new ResponseToolInfo("function", t!.Name!, t.Description, t.Parameters, t.Strict ?? true)).ToList() ?? [];

    private static IReadOnlyList<ToolDefinition> Tools(IReadOnlyList<ResponseToolRequest?>? tools)
    {
        if (tools is null)
        {
            return [];
        }

        var definitions = new ToolDefinition[tools.Count];
        for (var i = 0; i < tools.Count; i++)
        {
            var tool = tools[i] ?? throw OpenAiException.InvalidField($"tools[{i}]", $"tools[{i}] must be an object.");
            if (tool.Type != "function")
            {
                throw OpenAiException.InvalidField(
                    $"tools[{i}].type",
                    $"Invalid value for tools[{i}].type: '{tool.Type}'. Only 'function' tools are supported.");
            }

            var parameters = tool.Parameters is { ValueKind: JsonValueKind.Null } ? null : tool.Parameters;
            definitions[i] = new ToolDefinition(tool.Name ?? string.Empty, tool.Description, parameters);
        }

        return definitions;
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
