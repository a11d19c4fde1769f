using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Tools;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary>
/// Checks Anthropic Messages fields and maps them onto the engine's request, with the OpenAI mapper's checks
/// where the fields mean the same (max tokens, stop sequences, top_p). Every refusal is a 400 naming the field.
/// </summary>
internal static class AnthropicRequestMapper
{
    /// <summary>What a failed tool's result is prefixed with in the prompt: the engine's turns carry no error flag.</summary>
    public const string ToolErrorPrefix = "Error: ";

    /// <summary>
    /// The engine's request. <paramref name="requireMaxTokens"/> is false only for counting tokens, where
    /// <c>max_tokens</c> is not sent. A final assistant message is continued (prefill).
    /// </summary>
    public static GenerationRequest Map(MessagesRequest request, ModelInfo model, string requestId, bool requireMaxTokens = true)
    {
        var maxTokens = request.MaxTokens;
        if (maxTokens is null && requireMaxTokens)
        {
            throw OpenAiException.InvalidField("max_tokens", "'max_tokens' is required.");
        }

        var turns = Turns(request);
        var defaults = new SamplingOptions();
        var generation = new GenerationRequest
        {
            Messages = turns,
            ContinueFinalMessage = turns[^1].Role == "assistant",
            MaxTokens = OpenAiRequestMapper.MaxTokens(maxTokens, "max_tokens", model),
            Stop = OpenAiRequestMapper.Stop(request.StopSequences),
            Sampling = new SamplingOptions
            {
                // Anthropic's temperature runs from 0 to 1.
                Temperature = OpenAiRequestMapper.InRange(request.Temperature, "temperature", new(0, 1)) ?? defaults.Temperature,
                TopP = OpenAiRequestMapper.TopP(request.TopP) ?? defaults.TopP,
                TopK = OpenAiRequestMapper.InRange(request.TopK, "top_k", GenerationLimits.TopK) ?? defaults.TopK,
            },
            RequestId = requestId,
            Tools = Tools(request.Tools),
            ToolChoice = ToolChoice(request.ToolChoice),
            ParallelToolCalls = request.ToolChoice?.DisableParallelToolUse != true,
            SplitReasoning = true,
            EnableThinking = EnableThinking(request.Thinking),
        };
        ToolRequestChecks.Validate(generation.Tools, generation.ToolChoice, hasGrammar: false);
        return generation;
    }

    /// <summary>
    /// The system prompt and the messages as chat turns: a user message's <c>tool_result</c> blocks become tool
    /// turns (before its text), an assistant message's <c>tool_use</c> blocks its calls. As Anthropic requires,
    /// the message after one with <c>tool_use</c> blocks answers each of them, and only them, with a <c>tool_result</c>.
    /// </summary>
    private static List<ChatTurn> Turns(MessagesRequest request)
    {
        var messages = request.Messages ?? throw OpenAiException.InvalidField("messages", "'messages' is required.");
        if (messages.Count == 0)
        {
            throw OpenAiException.InvalidField("messages", "'messages' must contain at least one message.");
        }

        var turns = new List<ChatTurn>(messages.Count + 1);
        if (!string.IsNullOrEmpty(request.System))
        {
            turns.Add(new ChatTurn("system", request.System));
        }

        var answers = new ToolCallAnswers();
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw OpenAiException.InvalidField($"messages[{i}]", $"messages[{i}] must be an object.");
            var content = message.Content ?? throw OpenAiException.InvalidField($"messages[{i}].content", $"messages[{i}].content is required.");
            switch (message.Role)
            {
                case "user":
                    AddUser(turns, content, i, answers);
                    RequireAnswered(answers, i);
                    break;
                case "assistant":
                    RequireAnswered(answers, i);
                    turns.Add(Assistant(content, i));
                    for (var j = 0; j < content.Count; j++)
                    {
                        if (content[j] is { Type: "tool_use", Id: { } id } && !answers.Expect(AnthropicToolIds.FromWire(id), id))
                        {
                            throw OpenAiException.InvalidField(
                                $"messages[{i}].content[{j}].id",
                                $"messages[{i}].content[{j}].id: '{id}' names the same call as an earlier tool_use block in this message. Each tool_use block needs its own id: the tool_result block answering it names it.");
                        }
                    }

                    break;
                case null:
                    throw OpenAiException.InvalidField($"messages[{i}].role", $"messages[{i}].role is required.");
                default:
                    throw OpenAiException.InvalidField(
                        $"messages[{i}].role",
                        $"Invalid value for messages[{i}].role: '{message.Role}'. Roles are user and assistant; the system prompt goes in 'system'.");
            }
        }

        if (answers.Unanswered is not null)
        {
            throw OpenAiException.InvalidField(
                $"messages[{messages.Count - 1}].content",
                "The last message has tool_use blocks: send their results in a user message of tool_result blocks; only a text-only assistant message can be continued (prefill).");
        }

        return turns;
    }

    /// <summary>Refuses message <paramref name="i"/> when the <c>tool_use</c> blocks before it are not all answered.</summary>
    private static void RequireAnswered(ToolCallAnswers answers, int i)
    {
        if (answers.Unanswered is { } unanswered)
        {
            throw OpenAiException.InvalidField(
                $"messages[{i}].content",
                $"messages[{i}].content: messages[{i - 1}] has tool_use blocks with no tool_result block here: {unanswered}. Each tool_use block needs a tool_result block in the next message, a user message.");
        }
    }

    /// <summary>
    /// A user message: its <c>tool_result</c> blocks answer calls in <paramref name="answers"/> (by the engine's id).
    /// </summary>
    private static void AddUser(List<ChatTurn> turns, IReadOnlyList<AnthropicContentBlock?> content, int i, ToolCallAnswers answers)
    {
        var text = new StringBuilder();
        var hasText = content.Count == 0;
        for (var j = 0; j < content.Count; j++)
        {
            var block = Block(content, i, j);
            switch (block.Type)
            {
                case "text":
                    AppendText(text, block, i, j);
                    hasText = true;
                    break;
                case "tool_result":
                    if (string.IsNullOrEmpty(block.ToolUseId))
                    {
                        throw OpenAiException.InvalidField($"messages[{i}].content[{j}].tool_use_id", $"messages[{i}].content[{j}].tool_use_id is required on a tool_result block.");
                    }

                    var callId = AnthropicToolIds.FromWire(block.ToolUseId);
                    if (!answers.Answer(callId))
                    {
                        throw OpenAiException.InvalidField(
                            $"messages[{i}].content[{j}].tool_use_id",
                            $"messages[{i}].content[{j}].tool_use_id: unexpected '{block.ToolUseId}'. Each tool_result block answers one tool_use block of the previous message, an assistant message.");
                    }

                    var result = block.Content ?? string.Empty;
                    turns.Add(new ChatTurn("tool", block.IsError == true ? ToolErrorPrefix + result : result) { ToolCallId = callId });
                    break;
                default:
                    throw Unsupported(block, i, j, "user", "text and tool_result");
            }
        }

        if (hasText)
        {
            turns.Add(new ChatTurn("user", text.ToString()));
        }
    }

    /// <summary><c>thinking.type</c>: the model thinks unless it is <c>disabled</c> (a budget is not enforced).</summary>
    private static bool EnableThinking(AnthropicThinking? thinking) => thinking is null || thinking.Type switch
    {
        "enabled" or "adaptive" => true,
        "disabled" => false,
        null => throw OpenAiException.InvalidField("thinking.type", "thinking.type is required."),
        _ => throw OpenAiException.InvalidField("thinking.type", $"Invalid thinking.type: '{thinking.Type}'. Supported types are enabled, adaptive and disabled."),
    };

    private static ChatTurn Assistant(IReadOnlyList<AnthropicContentBlock?> content, int i)
    {
        var text = new StringBuilder();
        List<ToolCall>? calls = null;
        for (var j = 0; j < content.Count; j++)
        {
            var block = Block(content, i, j);
            switch (block.Type)
            {
                case "text":
                    AppendText(text, block, i, j);
                    break;
                case "tool_use":
                    var field = $"messages[{i}].content[{j}]";
                    if (string.IsNullOrEmpty(block.Id) || string.IsNullOrEmpty(block.Name))
                    {
                        throw OpenAiException.InvalidField(field, $"{field}: a tool_use block needs its 'id' and 'name'.");
                    }

                    if (block.Input is not { ValueKind: JsonValueKind.Object } input)
                    {
                        throw OpenAiException.InvalidField(field + ".input", $"{field}.input must be an object (the call's arguments).");
                    }

                    (calls ??= []).Add(new ToolCall(AnthropicToolIds.FromWire(block.Id), block.Name, input.GetRawText()));
                    break;
                case "thinking" or "redacted_thinking":
                    // Earlier answers' reasoning is not the model's to read again: the templates drop it too.
                    break;
                default:
                    throw Unsupported(block, i, j, "assistant", "text, tool_use and thinking");
            }
        }

        return new ChatTurn("assistant", calls is not null && text.Length == 0 ? null : text.ToString()) { ToolCalls = calls };
    }

    private static AnthropicContentBlock Block(IReadOnlyList<AnthropicContentBlock?> content, int i, int j) =>
        content[j] ?? throw OpenAiException.InvalidField($"messages[{i}].content[{j}]", $"messages[{i}].content[{j}] must be an object.");

    private static void AppendText(StringBuilder text, AnthropicContentBlock block, int i, int j)
    {
        if (block.Text is null)
        {
            throw OpenAiException.InvalidField($"messages[{i}].content[{j}].text", $"messages[{i}].content[{j}]: a text block needs a string 'text'.");
        }

        text.Append(text.Length > 0 ? "\n" : string.Empty).Append(block.Text);
    }

    private static OpenAiException Unsupported(AnthropicContentBlock block, int i, int j, string role, string supported) => OpenAiException.InvalidField(
        $"messages[{i}].content[{j}].type",
        block.Type is null
            ? $"messages[{i}].content[{j}].type is required."
            : $"Content blocks of type '{block.Type}' are not supported in {role} messages; {supported} blocks are.");

    private static IReadOnlyList<ToolDefinition> Tools(IReadOnlyList<AnthropicTool?>? tools)
    {
        if (tools is null)
        {
            return [];
        }

        var definitions = new ToolDefinition[tools.Count];
        for (var i = 0; i < tools.Count; i++)
        {
            var tool = tools[i] ?? throw OpenAiException.InvalidField($"tools[{i}]", $"tools[{i}] must be an object.");
            if (tool.Type is not (null or "custom"))
            {
                throw OpenAiException.InvalidField(
                    $"tools[{i}].type",
                    $"tools[{i}].type: tools of type '{tool.Type}' are not supported; only client tools (name, description, input_schema) are.");
            }

            if (tool.InputSchema is null or { ValueKind: JsonValueKind.Null })
            {
                throw OpenAiException.InvalidField($"tools[{i}].input_schema", $"tools[{i}].input_schema is required (a JSON schema object).");
            }

            definitions[i] = new ToolDefinition(tool.Name ?? string.Empty, tool.Description, tool.InputSchema);
        }

        return definitions;
    }

    private static ToolChoice ToolChoice(AnthropicToolChoice? choice) => choice?.Type switch
    {
        null when choice is null => Engine.Generation.ToolChoice.Auto,
        "auto" => Engine.Generation.ToolChoice.Auto,
        "any" => Engine.Generation.ToolChoice.Required,
        "none" => Engine.Generation.ToolChoice.None,
        "tool" => string.IsNullOrEmpty(choice.Name)
            ? throw OpenAiException.InvalidField("tool_choice.name", "tool_choice.name is required when tool_choice.type is 'tool'.")
            : Engine.Generation.ToolChoice.Function(choice.Name),
        _ => throw OpenAiException.InvalidField("tool_choice", $"Invalid tool_choice.type: '{choice!.Type}'. Supported types are auto, any, tool and none."),
    };

    /// <summary>Anthropic's stop reason for a finished generation; null for a failed or cancelled one.</summary>
    public static string? StopReason(GenerationCompleted completion) => completion.FinishReason switch
    {
        FinishReason.Stop => completion.StopSequence is null ? "end_turn" : "stop_sequence",
        FinishReason.Length => "max_tokens",
        FinishReason.ToolCalls => "tool_use",
        _ => null,
    };

    /// <summary>A call's arguments as the <c>input</c> object; arguments cut off by <c>max_tokens</c> (not JSON) give an empty object.</summary>
    public static JsonElement Input(string arguments)
    {
        try
        {
            using var document = JsonDocument.Parse(arguments);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                return document.RootElement.Clone();
            }
        }
        catch (JsonException)
        {
        }

        using var empty = JsonDocument.Parse("{}");
        return empty.RootElement.Clone();
    }

    public static AnthropicUsage Usage(GenerationUsage usage) =>
        new(usage.PromptTokens - usage.CachedPromptTokens, usage.CompletionTokens, 0, usage.CachedPromptTokens);
}
