using System.Collections;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using Microsoft.Extensions.AI;

namespace LlmServer.Extensions.AI;

/// <summary>Maps Microsoft.Extensions.AI messages and <see cref="ChatOptions"/> onto a <see cref="GenerationRequest"/>.</summary>
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
        if (options?.Tools is { Count: > 0 } && options.ToolMode is RequiredChatToolMode)
        {
            throw new NotSupportedException("This chat client cannot call tools; a tool mode that requires a tool call is not supported.");
        }

        var additional = options?.AdditionalProperties;
        var defaults = new SamplingOptions();
        var sampling = defaults with
        {
            Temperature = options?.Temperature ?? defaults.Temperature,
            TopP = options?.TopP ?? defaults.TopP,
            TopK = options?.TopK ?? defaults.TopK,
            FrequencyPenalty = options?.FrequencyPenalty ?? defaults.FrequencyPenalty,
            PresencePenalty = options?.PresencePenalty ?? defaults.PresencePenalty,
            Seed = options?.Seed is { } seed ? FoldSeed(seed) : null,
            MinP = Read(additional, MinPKey, defaults.MinP),
            RepeatPenalty = Read(additional, RepeatPenaltyKey, defaults.RepeatPenalty),
            PenaltyLastN = Read(additional, PenaltyLastNKey, defaults.PenaltyLastN),
        };

        return new GenerationRequest
        {
            Messages = ToTurns(messages, options?.Instructions),
            Sampling = sampling,
            MaxTokens = options?.MaxOutputTokens,
            Stop = StopSequences(options),
            Grammar = Grammar(options),
            IgnoreEos = Read(additional, IgnoreEosKey, false),
            SessionKey = options?.ConversationId,
        };
    }

    private static List<ChatTurn> ToTurns(IEnumerable<ChatMessage> messages, string? instructions)
    {
        var turns = new List<ChatTurn>();
        if (!string.IsNullOrEmpty(instructions))
        {
            turns.Add(new ChatTurn(ChatRole.System.Value, instructions));
        }

        foreach (var message in messages)
        {
            foreach (var content in message.Contents)
            {
                // Text is what the model reads; usage and reasoning from earlier answers carry nothing for it.
                if (content is not (TextContent or TextReasoningContent or UsageContent))
                {
                    throw new NotSupportedException($"This chat client handles text only; a {message.Role} message holds {content.GetType().Name}.");
                }
            }

            turns.Add(new ChatTurn(message.Role.Value, message.Text));
        }

        return turns;
    }

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
                    throw new GenerationException(GenerationErrorCode.InvalidRequest, $"'{StopKey}' must be a string or a list of strings.", StopKey);
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
                ?? throw new GenerationException(GenerationErrorCode.InvalidRequest, $"'{GrammarKey}' must be a GBNF grammar string.", GrammarKey);
        }

        if (options?.ResponseFormat is not ChatResponseFormatJson json)
        {
            return grammar;
        }

        if (grammar is not null)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, $"Give either a JSON response format or a '{GrammarKey}', not both.", GrammarKey);
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
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "The response format's JSON schema cannot be enforced: " + e.Message, "response_format");
        }
    }

    private static T Read<T>(AdditionalPropertiesDictionary? additional, string key, T fallback)
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
                throw new GenerationException(GenerationErrorCode.InvalidRequest, $"'{key}' must be a {typeof(T).Name}.", key);
            }
        }

        return additional.TryGetValue(key, out T? value) && value is not null
            ? value
            : throw new GenerationException(GenerationErrorCode.InvalidRequest, $"'{key}' must be a {typeof(T).Name}.", key);
    }

    /// <summary>ChatOptions seeds are 64-bit, the sampler's 32: fold the halves so every bit still changes the sample.</summary>
    private static uint FoldSeed(long seed) => unchecked((uint)seed ^ (uint)(seed >> 32));
}
