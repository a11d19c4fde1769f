using System.Collections;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using Microsoft.Extensions.AI;

namespace LlmServer.Extensions.AI;

/// <summary>
/// Maps Microsoft.Extensions.AI messages and <see cref="ChatOptions"/> onto a <see cref="GenerationRequest"/>. Its
/// refusals are worded as the engine's are (the field in <see cref="GenerationException.Field"/>, not in the message):
/// the chat client names the option the caller set (<see cref="InProcessFieldNames"/>).
/// </summary>
internal static class ChatRequestMapper
{
    /// <summary>
    /// Keys of <see cref="ChatOptions.AdditionalProperties"/> this client honours: sampling knobs ChatOptions has no
    /// property for, and the OpenAI-style names Semantic Kernel passes through unmapped.
    /// </summary>
    public const string MinPKey = "min_p";
    public const string RepeatPenaltyKey = "repeat_penalty";
    public const string PenaltyLastNKey = "penalty_last_n";
    public const string StopKey = "stop";
    public const string GrammarKey = "grammar";
    public const string IgnoreEosKey = "ignore_eos";

    public static GenerationRequest ToGenerationRequest(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var additional = options?.AdditionalProperties;
        var defaults = new SamplingOptions();
        var sampling = defaults with
        {
            Temperature = options?.Temperature ?? defaults.Temperature,
            TopP = options?.TopP ?? defaults.TopP,
            TopK = options?.TopK ?? defaults.TopK,
            FrequencyPenalty = options?.FrequencyPenalty ?? defaults.FrequencyPenalty,
            PresencePenalty = options?.PresencePenalty ?? defaults.PresencePenalty,
            Seed = options?.Seed is { } seed ? SamplingOptions.SeedFrom(seed) : null,
            MinP = Read(additional, MinPKey, GenerationField.MinP, defaults.MinP),
            RepeatPenalty = Read(additional, RepeatPenaltyKey, GenerationField.RepeatPenalty, defaults.RepeatPenalty),
            PenaltyLastN = Read(additional, PenaltyLastNKey, GenerationField.PenaltyLastN, defaults.PenaltyLastN),
        };

        return new GenerationRequest
        {
            Messages = ToTurns(messages, options?.Instructions),
            Sampling = sampling,
            MaxTokens = options?.MaxOutputTokens,
            Stop = StopSequences(options),
            Grammar = Grammar(options),
            IgnoreEos = Read(additional, IgnoreEosKey, GenerationField.IgnoreEos, false),
            SessionKey = options?.ConversationId,
            Tools = Tools(options),
            ToolChoice = ToolChoiceOf(options),
            ParallelToolCalls = options?.AllowMultipleToolCalls ?? true,
            SplitReasoning = true,
            EnableThinking = options?.Reasoning?.Effort != ReasoningEffort.None,
        };
    }

    /// <summary>Whether the answer's reasoning comes back (as <see cref="TextReasoningContent"/>): unless the caller asked for none.</summary>
    public static bool ReturnsReasoning(ChatOptions? options) => options?.Reasoning?.Output != ReasoningOutput.None;

    /// <summary>Function declarations (an <see cref="AIFunction"/> is one) become the engine's tool definitions.</summary>
    private static List<ToolDefinition> Tools(ChatOptions? options)
    {
        var tools = new List<ToolDefinition>();
        foreach (var tool in options?.Tools ?? [])
        {
            if (tool is not AIFunctionDeclaration function)
            {
                throw new NotSupportedException($"This chat client offers functions only; '{tool.Name}' is a {tool.GetType().Name}.");
            }

            tools.Add(new ToolDefinition(function.Name, string.IsNullOrEmpty(function.Description) ? null : function.Description, function.JsonSchema));
        }

        return tools;
    }

    private static ToolChoice ToolChoiceOf(ChatOptions? options) => options?.ToolMode switch
    {
        NoneChatToolMode => ToolChoice.None,
        RequiredChatToolMode { RequiredFunctionName: { } name } => ToolChoice.Function(name),
        RequiredChatToolMode => ToolChoice.Required,
        _ => ToolChoice.Auto,
    };

    private static List<ChatTurn> ToTurns(IEnumerable<ChatMessage> messages, string? instructions)
    {
        var turns = new List<ChatTurn>();
        if (!string.IsNullOrEmpty(instructions))
        {
            turns.Add(new ChatTurn(ChatRole.System.Value, instructions));
        }

        foreach (var message in messages)
        {
            List<ToolCall>? calls = null;
            string? reasoning = null;
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    // An answer's reasoning goes to the template with it (which keeps it where it keeps any: Qwen3
                    // in a tool-call loop); other messages' reasoning carries nothing for the model. Its pieces join
                    // with nothing between them, as message.Text joins text: they are pieces of one text (a streamed
                    // answer's updates, coalesced or not), unlike the Responses wire's reasoning items (a newline).
                    case TextReasoningContent thought when message.Role == ChatRole.Assistant:
                        reasoning += thought.Text;
                        break;

                    // Text is what the model reads; usage carries nothing for it.
                    case TextContent or TextReasoningContent or UsageContent:
                        break;
                    case FunctionCallContent call:
                        (calls ??= []).Add(new ToolCall(call.CallId, call.Name, JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions)));
                        break;
                    case FunctionResultContent:
                        break;
                    default:
                        throw new NotSupportedException($"This chat client handles text and function calls only; a {message.Role} message holds {content.GetType().Name}.");
                }
            }

            // A message that only carries function results becomes tool messages alone.
            if (calls is not null || message.Contents.Any(c => c is TextContent) || !message.Contents.Any(c => c is FunctionResultContent))
            {
                turns.Add(new ChatTurn(message.Role.Value, calls is not null && message.Text.Length == 0 ? null : message.Text) { ToolCalls = calls, ReasoningContent = reasoning });
            }

            // Each function result is a tool message answering its call.
            foreach (var result in message.Contents.OfType<FunctionResultContent>())
            {
                turns.Add(new ChatTurn("tool", ResultText(result)) { ToolCallId = result.CallId });
            }
        }

        return turns;
    }

    private static string ResultText(FunctionResultContent result) => result.Result switch
    {
        null => result.Exception is { } e ? "Error: " + e.Message : string.Empty,
        string text => text,
        JsonElement { ValueKind: JsonValueKind.String } element => element.GetString()!,
        var value => JsonSerializer.Serialize(value, AIJsonUtilities.DefaultOptions.GetTypeInfo(value.GetType())),
    };

    private static List<string> StopSequences(ChatOptions? options)
    {
        var stops = new List<string>();
        if (options?.StopSequences is { } fromOptions)
        {
            stops.AddRange(fromOptions);
        }

        if (options?.AdditionalProperties is { } additional && additional.TryGetValue(StopKey, out var value) && value is not null)
        {
            switch (value)
            {
                case string single:
                    stops.Add(single);
                    break;
                case JsonElement { ValueKind: JsonValueKind.String } element:
                    stops.Add(element.GetString()!);
                    break;
                case JsonElement { ValueKind: JsonValueKind.Array } element when element.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String):
                    stops.AddRange(element.EnumerateArray().Select(e => e.GetString()!));
                    break;
                case IEnumerable sequence when sequence.Cast<object?>().All(o => o is string):
                    stops.AddRange(sequence.Cast<string>());
                    break;
                default:
                    throw new GenerationException(GenerationErrorCode.InvalidRequest, "must be a string or a list of strings.", GenerationField.Stop);
            }
        }

        return stops.Distinct(StringComparer.Ordinal).ToList();
    }

    private static string? Grammar(ChatOptions? options)
    {
        string? grammar = null;
        if (options?.AdditionalProperties is { } additional && additional.TryGetValue(GrammarKey, out var value) && value is not null)
        {
            grammar = value as string ?? (value is JsonElement { ValueKind: JsonValueKind.String } element ? element.GetString() : null)
                ?? throw new GenerationException(GenerationErrorCode.InvalidRequest, "must be a GBNF grammar string.", GenerationField.Grammar);
        }

        if (options?.ResponseFormat is not ChatResponseFormatJson json)
        {
            return grammar;
        }

        if (grammar is not null)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "give either a JSON response format or a grammar, not both.", GenerationField.Grammar);
        }

        if (json.Schema is not { } schema)
        {
            return JsonGrammar.AnyObject;
        }

        try
        {
            return JsonGrammar.FromSchema(schema);
        }
        catch (ArgumentException e)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "the JSON schema cannot be enforced: " + e.Message, GenerationField.Grammar);
        }
    }

    private static T Read<T>(AdditionalPropertiesDictionary? additional, string key, GenerationField field, T fallback)
    {
        if (additional is null || !additional.TryGetValue(key, out var raw) || raw is null)
        {
            return fallback;
        }

        if (raw is JsonElement element)
        {
            try
            {
                return element.Deserialize<T>() ?? fallback;
            }
            catch (JsonException)
            {
                throw WrongType<T>(field);
            }
        }

        return additional.TryGetValue(key, out T? value) && value is not null ? value : throw WrongType<T>(field);
    }

    private static GenerationException WrongType<T>(GenerationField field) => new(
        GenerationErrorCode.InvalidRequest,
        typeof(T) == typeof(bool) ? "must be true or false." : typeof(T) == typeof(int) ? "must be a whole number." : "must be a number.",
        field);
}
