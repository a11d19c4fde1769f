using LlmServer.Anthropic;
using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;

namespace LlmServer.Tests.Errors;

/// <summary>An engine refusal reads with the client's own name of the field in front, named once.</summary>
public sealed class WireFieldNamesTests
{
    [Theory]
    [InlineData("top_p", "must be between 0 and 1.", "top_p: must be between 0 and 1.")]
    [InlineData("top_p", "top_p: must be between 0 and 1.", "top_p: must be between 0 and 1.")]
    [InlineData("tools", "The tool choice requires a call, but no tools are given.", "tools: The tool choice requires a call, but no tools are given.")]
    [InlineData("messages[0].role", "messages[0].role is required.", "messages[0].role is required.")]
    [InlineData("max_tokens", "'max_tokens' is required.", "'max_tokens' is required.")]
    [InlineData("stop", "stopping is not allowed", "stop: stopping is not allowed")]
    [InlineData(null, "The server is busy.", "The server is busy.")]
    public void The_field_goes_in_front_unless_the_message_begins_by_naming_it(string? field, string message, string expected) =>
        Assert.Equal(expected, GenerationException.Prefixed(field, message));

    [Fact]
    public void OpenAI_names_the_field_in_param_and_in_the_message()
    {
        var error = OpenAiErrors.FromGeneration(new GenerationException(GenerationErrorCode.InvalidRequest, "must be greater than 0 and at most 1.", GenerationField.TopP));

        Assert.Equal("top_p", error.Param);
        Assert.Equal("top_p: must be greater than 0 and at most 1.", error.Message);
    }

    [Fact]
    public void Anthropic_names_its_field_once()
    {
        var error = OpenAiErrors.FromGeneration(new GenerationException(GenerationErrorCode.InvalidRequest, "takes at most 4 non-empty sequences.", GenerationField.Stop), AnthropicFieldNames.Names);

        Assert.Equal("stop_sequences: takes at most 4 non-empty sequences.", AnthropicErrors.MessageOf(error.ToRefusal()));
    }
}
