using LlmServer.Engine.Generation;
using LlmServer.Errors;

namespace LlmServer.OpenAi;

/// <summary>The OpenAI API's names of the engine's fields: chat and legacy completions, embeddings, tokenize.</summary>
internal static class OpenAiFieldNames
{
    public static WireFieldNames Names { get; } = new(Name);

    /// <summary>llama-server's <c>/tokenize</c>: the text is its <c>content</c>.</summary>
    public static WireFieldNames TokenizeNames { get; } = new((field, index, call) => field == GenerationField.Prompt ? "content" : Name(field, index, call));

    /// <summary>The OpenAI name of a field; the other front ends fall back to it for the names they share.</summary>
    public static string? Name(GenerationField field, int? index, int? call) => field switch
    {
        GenerationField.Prompt => "prompt",
        GenerationField.Messages => "messages",
        GenerationField.MaxTokens => "max_tokens",
        GenerationField.Stop => "stop",
        GenerationField.IgnoreEos => "ignore_eos",
        GenerationField.Grammar => "response_format",
        GenerationField.Choices => "n",
        GenerationField.TopLogProbs => "top_logprobs",
        GenerationField.Tools => "tools",
        GenerationField.ToolName => $"tools[{index}].function.name",
        GenerationField.ToolParameters => $"tools[{index}].function.parameters",
        GenerationField.ToolChoice => "tool_choice",
        GenerationField.Temperature => "temperature",
        GenerationField.TopP => "top_p",
        GenerationField.TopK => "top_k",
        GenerationField.MinP => "min_p",
        GenerationField.RepeatPenalty => "repeat_penalty",
        GenerationField.FrequencyPenalty => "frequency_penalty",
        GenerationField.PresencePenalty => "presence_penalty",
        GenerationField.PenaltyLastN => "penalty_last_n",
        GenerationField.LogitBias => "logit_bias",
        GenerationField.Tokens => "tokens",
        GenerationField.Input => index is { } i ? $"input[{i}]" : "input",
        GenerationField.Dimensions => "dimensions",
        GenerationField.ToolCallArguments => $"messages[{index}].tool_calls[{call}].function.arguments",
        _ => null,
    };
}
