using LlmServer.Engine.Generation;

namespace LlmServer.Extensions.AI;

/// <summary>
/// How the in-process adapters name the engine's request fields (<see cref="GenerationField"/>): as the option the
/// caller set, so a refusal reads <c>ChatOptions.MaxOutputTokens: must be at least 1.</c> The HTTP front ends have
/// their wire names; these are the .NET callers'. A field a caller cannot set has no name (the message stays the engine's).
/// </summary>
/// <param name="name">The caller's name of a field (with the list index, for one item of a list), or null.</param>
internal sealed class InProcessFieldNames(Func<GenerationField, int?, string?> name)
{
    /// <summary>Microsoft.Extensions.AI callers: <see cref="Microsoft.Extensions.AI.ChatOptions"/> and its additional properties.</summary>
    public static InProcessFieldNames ChatOptions { get; } = new((field, index) => field switch
    {
        GenerationField.Messages => "messages",
        GenerationField.MaxTokens => "ChatOptions.MaxOutputTokens",
        GenerationField.Stop => "ChatOptions.StopSequences",
        GenerationField.Temperature => "ChatOptions.Temperature",
        GenerationField.TopP => "ChatOptions.TopP",
        GenerationField.TopK => "ChatOptions.TopK",
        GenerationField.FrequencyPenalty => "ChatOptions.FrequencyPenalty",
        GenerationField.PresencePenalty => "ChatOptions.PresencePenalty",
        GenerationField.Tools => "ChatOptions.Tools",
        GenerationField.ToolName => $"ChatOptions.Tools[{index}].Name",
        GenerationField.ToolParameters => $"ChatOptions.Tools[{index}].JsonSchema",
        GenerationField.ToolChoice => "ChatOptions.ToolMode",
        _ => Additional(field) is { } key ? $"ChatOptions.AdditionalProperties[\"{key}\"]" : null,
    });

    /// <summary>
    /// Semantic Kernel callers: the keys of <c>PromptExecutionSettings.ExtensionData</c> (typed settings serialize
    /// to the same keys), which Semantic Kernel maps onto <see cref="Microsoft.Extensions.AI.ChatOptions"/>; tools
    /// are the kernel's functions, offered by <c>FunctionChoiceBehavior</c>.
    /// </summary>
    public static InProcessFieldNames PromptExecutionSettings { get; } = new((field, _) => field switch
    {
        GenerationField.Messages => "ChatHistory",
        GenerationField.Tools or GenerationField.ToolName or GenerationField.ToolParameters or GenerationField.ToolChoice => "FunctionChoiceBehavior",
        _ => (field switch
        {
            GenerationField.MaxTokens => "max_tokens",
            GenerationField.Stop => "stop_sequences",
            GenerationField.Temperature => "temperature",
            GenerationField.TopP => "top_p",
            GenerationField.TopK => "top_k",
            GenerationField.FrequencyPenalty => "frequency_penalty",
            GenerationField.PresencePenalty => "presence_penalty",
            _ => Additional(field),
        }) is { } key ? $"PromptExecutionSettings.ExtensionData[\"{key}\"]" : null,
    });

    /// <summary>
    /// The engine's refusal with this caller's name of its field in front (the engine's own inside), or null when it
    /// names no field this caller sets.
    /// </summary>
    public GenerationException? Named(GenerationException engine) =>
        engine.Field is { } field && name(field, engine.FieldIndex) is { } fieldName ? engine.WithFieldName(fieldName) : null;

    /// <summary>The fields set through additional properties (extension data), under the keys the chat client reads.</summary>
    private static string? Additional(GenerationField field) => field switch
    {
        GenerationField.MinP => ChatRequestMapper.MinPKey,
        GenerationField.RepeatPenalty => ChatRequestMapper.RepeatPenaltyKey,
        GenerationField.PenaltyLastN => ChatRequestMapper.PenaltyLastNKey,
        GenerationField.IgnoreEos => ChatRequestMapper.IgnoreEosKey,
        GenerationField.Grammar => ChatRequestMapper.GrammarKey,
        _ => null,
    };
}
