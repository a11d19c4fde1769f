using LlmServer.Engine.Generation;
using Microsoft.Extensions.AI;

namespace LlmServer.Extensions.AI;

/// <summary>
/// How the in-process adapters name the engine's request fields (<see cref="GenerationField"/>): as the option the
/// caller set, so a refusal reads <c>ChatOptions.MaxOutputTokens: must be at least 1.</c> The HTTP front ends have
/// their wire names; these are the .NET callers'. A field a caller cannot set has no name (the message stays the engine's).
/// </summary>
/// <param name="name">
/// The caller's name of a field (with the list index, for one item of a list), from the options the request was
/// made of (the stop sequences come from two options), or null.
/// </param>
internal sealed class InProcessFieldNames(Func<GenerationField, int?, ChatOptions?, string?> name)
{
    /// <summary>Microsoft.Extensions.AI callers: <see cref="Microsoft.Extensions.AI.ChatOptions"/> and its additional properties.</summary>
    public static InProcessFieldNames ChatOptions { get; } = new((field, index, options) => field switch
    {
        GenerationField.Messages => "messages",
        GenerationField.MaxTokens => "ChatOptions.MaxOutputTokens",
        GenerationField.Stop => Stop(options, "ChatOptions.StopSequences", AdditionalProperty(ChatRequestMapper.StopKey)),
        GenerationField.Temperature => "ChatOptions.Temperature",
        GenerationField.TopP => "ChatOptions.TopP",
        GenerationField.TopK => "ChatOptions.TopK",
        GenerationField.FrequencyPenalty => "ChatOptions.FrequencyPenalty",
        GenerationField.PresencePenalty => "ChatOptions.PresencePenalty",
        GenerationField.Tools => "ChatOptions.Tools",
        GenerationField.ToolName => $"ChatOptions.Tools[{index}].Name",
        GenerationField.ToolParameters => $"ChatOptions.Tools[{index}].JsonSchema",
        GenerationField.ToolChoice => "ChatOptions.ToolMode",
        GenerationField.Grammar => Grammar(options, "ChatOptions.ResponseFormat", AdditionalProperty(ChatRequestMapper.GrammarKey)),
        _ => Additional(field) is { } key ? AdditionalProperty(key) : null,
    });

    /// <summary>
    /// Semantic Kernel callers: the keys of <c>PromptExecutionSettings.ExtensionData</c> (typed settings serialize
    /// to the same keys), which Semantic Kernel maps onto <see cref="Microsoft.Extensions.AI.ChatOptions"/> (its
    /// <c>stop_sequences</c> onto <c>StopSequences</c>) or passes through as additional properties (<c>stop</c>);
    /// tools are the kernel's functions, offered by <c>FunctionChoiceBehavior</c>.
    /// </summary>
    public static InProcessFieldNames PromptExecutionSettings { get; } = new((field, _, options) => field switch
    {
        GenerationField.Messages => "ChatHistory",
        GenerationField.Tools or GenerationField.ToolName or GenerationField.ToolParameters or GenerationField.ToolChoice => "FunctionChoiceBehavior",
        GenerationField.Stop => Stop(options, ExtensionData("stop_sequences"), ExtensionData(ChatRequestMapper.StopKey)),
        GenerationField.Grammar => Grammar(options, ExtensionData("response_format"), ExtensionData(ChatRequestMapper.GrammarKey)),
        _ => (field switch
        {
            GenerationField.MaxTokens => "max_tokens",
            GenerationField.Temperature => "temperature",
            GenerationField.TopP => "top_p",
            GenerationField.TopK => "top_k",
            GenerationField.FrequencyPenalty => "frequency_penalty",
            GenerationField.PresencePenalty => "presence_penalty",
            _ => Additional(field),
        }) is { } key ? ExtensionData(key) : null,
    });

    /// <summary>
    /// The engine's refusal of a request made of <paramref name="options"/> with this caller's name of its field in
    /// front (the engine's own inside), or null when it names no field this caller sets.
    /// </summary>
    public GenerationException? Named(GenerationException engine, ChatOptions? options) =>
        engine.Field is { } field && name(field, engine.FieldIndex, options) is { } fieldName ? engine.WithFieldName(fieldName) : null;

    /// <summary>The fields set through additional properties (extension data), under the keys the chat client reads.</summary>
    private static string? Additional(GenerationField field) => field switch
    {
        GenerationField.MinP => ChatRequestMapper.MinPKey,
        GenerationField.RepeatPenalty => ChatRequestMapper.RepeatPenaltyKey,
        GenerationField.PenaltyLastN => ChatRequestMapper.PenaltyLastNKey,
        GenerationField.IgnoreEos => ChatRequestMapper.IgnoreEosKey,
        _ => null,
    };

    private static string AdditionalProperty(string key) => $"ChatOptions.AdditionalProperties[\"{key}\"]";

    private static string ExtensionData(string key) => $"PromptExecutionSettings.ExtensionData[\"{key}\"]";

    /// <summary>
    /// The engine refuses the stop sequences merged from <see cref="ChatOptions.StopSequences"/> and the
    /// <c>stop</c> additional property: named as whichever the caller set, or both.
    /// </summary>
    private static string Stop(ChatOptions? options, string sequences, string additional)
    {
        var fromSequences = options?.StopSequences is { Count: > 0 };
        var fromAdditional = options?.AdditionalProperties?.TryGetValue(ChatRequestMapper.StopKey, out var stop) == true && stop is not null;
        return fromSequences && fromAdditional ? $"{sequences} and {additional}" : fromAdditional ? additional : sequences;
    }

    /// <summary>
    /// The grammar comes from a JSON <see cref="ChatOptions.ResponseFormat"/> or the <c>grammar</c> additional
    /// property: named as whichever the caller set, or both (which is refused).
    /// </summary>
    private static string Grammar(ChatOptions? options, string responseFormat, string additional)
    {
        var fromFormat = options?.ResponseFormat is ChatResponseFormatJson;
        var fromAdditional = options?.AdditionalProperties?.TryGetValue(ChatRequestMapper.GrammarKey, out var grammar) == true && grammar is not null;
        return fromFormat && fromAdditional ? $"{responseFormat} and {additional}" : fromFormat ? responseFormat : additional;
    }
}
