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
    /// join the assistant turn before them (or make one); a function call's output becomes a tool turn; a reasoning
    /// item's text is the reasoning_content of the assistant turn the next message or call makes or joins (an answer
    /// that only thought, followed by a user or system message, is an assistant turn with only its reasoning): the
    /// turn llama-server gives it for items in the order responses write them, reasoning first. The template decides
    /// which turns' reasoning it renders. The rule the chat wires share
    /// (<see cref="ToolCallAnswers"/>): the outputs after a turn's calls answer each of them, once, before any other
    /// item, and the input does not end with a call unanswered; the previous response's calls are the first ones
    /// awaiting outputs.
    /// </summary>
    public static List<ChatTurn> Conversation(CreateResponseRequest request, StoredResponse? previous)
    {
        var input = request.Input ?? throw OpenAiException.InvalidField("input", "'input' is required.");
        if (input.Count == 0)
        {
            throw OpenAiException.InvalidField("input", "'input' must contain at least one message.");
        }

        var turns = new List<ChatTurn>(previous?.Conversation ?? []);
        var answers = new ToolCallAnswers();

        // The input item of each call made in this input: a refusal names it.
        var callItems = new Dictionary<string, int>(StringComparer.Ordinal);

        // The reasoning items' text awaiting the output they led to.
        string? reasoning = null;

        // A stored conversation answered all its calls but the last turn's, the previous response's own.
        IReadOnlyList<ToolCall> previousCalls = turns is [.., { Role: "assistant", ToolCalls: { } calls }] ? calls : [];
        foreach (var call in previousCalls)
        {
            answers.Expect(call.Id, call.Id);
        }

        for (var i = 0; i < input.Count; i++)
        {
            var item = input[i];
            RequireStrings(item, i, "type");
            switch (item.Type)
            {
                case ResponseInputItem.FunctionCallType:
                    var call = FunctionCall(item, i);
                    if (previousCalls.Any(c => c.Id == call.Id))
                    {
                        // As OpenAI does, a re-sent item of the previous response is a duplicate, refused; the
                        // message says why rather than calling it a clash within this input.
                        throw OpenAiException.InvalidField(
                            $"input[{i}].call_id",
                            $"input[{i}] is a function call of response '{previous!.Response.Id}', which 'previous_response_id' continues: that response already holds it. Send only its function_call_output; remove duplicate items from your input and try again.");
                    }

                    if (turns is [.., { Role: "assistant" } last])
                    {
                        // The same turn: its calls await their outputs together.
                        turns[^1] = last with { ToolCalls = [.. last.ToolCalls ?? [], call], ReasoningContent = ResponseShape.JoinReasoning(last.ReasoningContent, reasoning) };
                    }
                    else
                    {
                        RequireAnswered(answers, callItems, $"before input[{i}]");
                        turns.Add(new ChatTurn("assistant", null) { ToolCalls = [call], ReasoningContent = reasoning });
                    }

                    reasoning = null;

                    if (!answers.Expect(call.Id, call.Id))
                    {
                        throw OpenAiException.InvalidField(
                            $"input[{i}].call_id",
                            $"input[{i}].call_id: '{call.Id}' is the call_id of an earlier function call of the same turn. Each function call needs its own call_id: the function_call_output answering it names it.");
                    }

                    callItems[call.Id] = i;
                    break;
                case ResponseInputItem.FunctionCallOutputType:
                    var (callId, output) = FunctionCallOutput(item, i);
                    if (!answers.Answer(callId))
                    {
                        throw OpenAiException.InvalidField(
                            $"input[{i}].call_id",
                            $"input[{i}].call_id: no function call awaits the function_call_output with call_id '{callId}'. A function_call_output answers a function_call item before it (or a call of the response 'previous_response_id' names), once, before the next message.");
                    }

                    turns.Add(new ChatTurn("tool", output) { ToolCallId = callId });
                    break;
                case ResponseInputItem.MessageType:
                    var message = Message(item, i);
                    RequireAnswered(answers, callItems, $"before input[{i}]");
                    if (reasoning is not null && message.Role != "assistant")
                    {
                        // An answer that only thought: its turn, as the stored response's is.
                        turns.Add(new ChatTurn("assistant", string.Empty) { ReasoningContent = reasoning });
                        reasoning = null;
                    }

                    turns.Add(message with { ReasoningContent = reasoning });
                    reasoning = null;
                    break;
                case ResponseInputItem.ReasoningType:
                    // Reasoning starts an answer: the calls before it are answered by then.
                    RequireAnswered(answers, callItems, $"before input[{i}]");
                    reasoning = ResponseShape.JoinReasoning(reasoning, Reasoning(item, i, isLast: i == input.Count - 1));
                    break;
                default:
                    throw OpenAiException.InvalidField(
                        $"input[{i}].type",
                        $"Invalid value for input[{i}].type: '{item.Type}'. Supported item types are message, function_call, function_call_output and reasoning.");
            }
        }

        RequireAnswered(answers, callItems, "at the end of 'input'");
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
            SplitReasoning = true,
            EnableThinking = EnableThinking(request.Reasoning),
        };
        ToolRequestChecks.Validate(generation.Tools, generation.ToolChoice, generation.Grammar is not null);
        return generation;
    }

    /// <summary>
    /// <c>reasoning.effort</c> <c>none</c> renders the template's <c>enable_thinking</c> false (Qwen3 then closes an
    /// empty block in the prompt); the other efforts leave thinking on, and nothing shortens it.
    /// <c>reasoning.summary</c> is checked and echoed only: no summary is written.
    /// </summary>
    private static bool EnableThinking(ResponseReasoningRequest? reasoning)
    {
        if (reasoning?.Summary is { } summary && summary is not ("auto" or "concise" or "detailed"))
        {
            throw OpenAiException.InvalidField(
                "reasoning.summary",
                $"Invalid value for 'reasoning.summary': '{summary}'. Supported values are 'auto', 'concise' and 'detailed'.");
        }

        return reasoning?.Effort switch
        {
            null or "minimal" or "low" or "medium" or "high" or "xhigh" => true,
            "none" => false,
            var effort => throw OpenAiException.InvalidField(
                "reasoning.effort",
                $"Invalid value for 'reasoning.effort': '{effort}'. Supported values are 'none', 'minimal', 'low', 'medium', 'high' and 'xhigh'."),
        };
    }

    /// <summary>
    /// Refuses what comes <paramref name="where"/> while calls still await their outputs, naming the first such call's
    /// item (or the input, for the previous response's calls).
    /// </summary>
    private static void RequireAnswered(ToolCallAnswers answers, Dictionary<string, int> callItems, string where)
    {
        if (answers.Unanswered is not { } unanswered)
        {
            return;
        }

        var items = answers.Awaiting.Where(callItems.ContainsKey).Select(id => callItems[id]).ToList();
        var param = items.Count == 0 ? "input" : $"input[{items.Min()}].call_id";
        throw OpenAiException.InvalidField(
            param,
            $"No tool output found for function call {unanswered} {where}: send each call's result as a function_call_output item with its call_id, after the function_call items and before the next message.");
    }

    private static ToolCall FunctionCall(ResponseInputItem item, int i)
    {
        RequireStrings(item, i, "call_id", "name", "arguments");
        var field = $"input[{i}]";
        return new ToolCall(
            Required(item.CallId, field + ".call_id", "a function_call item needs its call_id: the function_call_output answering it names it"),
            Required(item.Name, field + ".name", "a function_call item needs the name of the function it called"),
            Required(item.Arguments, field + ".arguments", "a function_call item needs its arguments, a JSON string", allowEmpty: true));
    }

    private static (string CallId, string Output) FunctionCallOutput(ResponseInputItem item, int i)
    {
        RequireStrings(item, i, "call_id");
        var field = $"input[{i}]";
        return (
            Required(item.CallId, field + ".call_id", "a function_call_output item needs the call_id of the function call it answers"),
            Required(item.Output, field + ".output", "a function_call_output item carries the call's result", allowEmpty: true));
    }

    /// <summary>
    /// A reasoning item's text. Refused without reasoning_text content (a summary alone is not the chain the model
    /// wrote, and llama-server refuses it too) and as the last item: reasoning comes before the output it led to.
    /// </summary>
    private static string Reasoning(ResponseInputItem item, int i, bool isLast)
    {
        var field = $"input[{i}]";
        var text = Required(item.Content, field + ".content", "a reasoning item carries the model's reasoning as reasoning_text parts", allowEmpty: true);
        return isLast
            ? throw OpenAiException.InvalidField(
                field,
                $"{field} is a reasoning item and the last input item: reasoning comes before the assistant message or function call it led to.")
            : text;
    }

    private static ChatTurn Message(ResponseInputItem item, int i)
    {
        RequireStrings(item, i, "role");
        var field = $"input[{i}]";
        var given = Required(item.Role, field + ".role", "each input message needs a role", allowEmpty: true);
        var role = given switch
        {
            "system" or "developer" => "system",
            "user" or "assistant" => given,
            _ => throw OpenAiException.InvalidField(
                field + ".role",
                $"Invalid value for {field}.role: '{given}'. Supported roles are system, developer, user and assistant."),
        };
        var content = Required(item.Content, field + ".content", "a string or a list of input_text parts", allowEmpty: true);
        return new ChatTurn(role, content);
    }

    /// <summary>Refuses the first of the item's <paramref name="fields"/> that came with another JSON type than a string.</summary>
    private static void RequireStrings(ResponseInputItem item, int i, params ReadOnlySpan<string> fields)
    {
        foreach (var field in fields)
        {
            if (item.MistypedFields?.GetValueOrDefault(field) is { } got)
            {
                throw OpenAiException.InvalidType($"input[{i}].{field}", "a string", got);
            }
        }
    }

    /// <summary>The field's value, refused as missing when absent (or, unless <paramref name="allowEmpty"/>, empty).</summary>
    private static string Required(string? value, string param, string why, bool allowEmpty = false) =>
        value is null || (!allowEmpty && value.Length == 0) ? throw OpenAiException.InvalidField(param, $"{param} is required: {why}.") : value;

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
