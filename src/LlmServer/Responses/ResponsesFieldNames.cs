using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary>The Responses API's names of the engine's fields; the sampling fields keep the OpenAI names.</summary>
internal static class ResponsesFieldNames
{
    public static WireFieldNames Names { get; } = new((field, index, call) => field switch
    {
        // Its function_call items are not the engine's messages one for one.
        GenerationField.Prompt or GenerationField.Messages or GenerationField.ToolCallArguments => "input",
        GenerationField.MaxTokens => "max_output_tokens",
        GenerationField.Grammar => "text.format",
        GenerationField.ToolName => $"tools[{index}].name",
        GenerationField.ToolParameters => $"tools[{index}].parameters",
        GenerationField.Choices or GenerationField.Stop => null,
        _ => OpenAiFieldNames.Name(field, index, call),
    });
}
