using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary>The Messages API's names of the engine's fields; those it shares with OpenAI keep the OpenAI names.</summary>
internal static class AnthropicFieldNames
{
    public static WireFieldNames Names { get; } = new((field, index, call) => field switch
    {
        // Its tool_use inputs are objects, always JSON; its messages are not the engine's one for one.
        GenerationField.Prompt or GenerationField.Messages or GenerationField.ToolCallArguments => "messages",
        GenerationField.Stop => "stop_sequences",
        GenerationField.ToolName => $"tools[{index}].name",
        GenerationField.ToolParameters => $"tools[{index}].input_schema",
        GenerationField.Choices or GenerationField.Grammar => null,
        _ => OpenAiFieldNames.Name(field, index, call),
    });
}
