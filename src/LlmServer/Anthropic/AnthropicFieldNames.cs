using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary>The Messages API's names of the engine's fields; those it shares with OpenAI keep the OpenAI names.</summary>
internal static class AnthropicFieldNames
{
    public static WireFieldNames Names { get; } = new((field, index) => field switch
    {
        GenerationField.Prompt or GenerationField.Messages => "messages",
        GenerationField.Stop => "stop_sequences",
        GenerationField.ToolName => $"tools[{index}].name",
        GenerationField.ToolParameters => $"tools[{index}].input_schema",
        GenerationField.Choices or GenerationField.Grammar => null,
        _ => OpenAiFieldNames.Name(field, index),
    });
}
