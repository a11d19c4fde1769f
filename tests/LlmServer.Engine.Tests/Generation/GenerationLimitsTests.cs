using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Tests.Generation;

/// <summary>The validator enforces exactly the ranges <see cref="GenerationLimits"/> publishes, ends included.</summary>
public sealed class GenerationLimitsTests
{
    [Theory]
    [InlineData(0f, 1f, null)]
    [InlineData(2f, 1f, 1)]
    [InlineData(0.7f, 0.001f, 4096)]
    public void Values_inside_the_published_ranges_are_accepted(float temperature, float topP, int? maxTokens) =>
        GenerationRequestValidator.Validate(Request(temperature, topP, maxTokens));

    [Theory]
    [InlineData(2.01f, 1f, null, GenerationField.Temperature, "must be between 0 and 2.")]
    [InlineData(-0.1f, 1f, null, GenerationField.Temperature, "must be between 0 and 2.")]
    [InlineData(float.NaN, 1f, null, GenerationField.Temperature, "must be between 0 and 2.")]
    [InlineData(1f, 0f, null, GenerationField.TopP, "must be greater than 0 and at most 1.")]
    [InlineData(1f, 1.01f, null, GenerationField.TopP, "must be greater than 0 and at most 1.")]
    [InlineData(1f, 1f, 0, GenerationField.MaxTokens, "must be at least 1.")]
    public void Values_outside_them_are_refused_naming_the_range(float temperature, float topP, int? maxTokens, GenerationField field, string message)
    {
        var error = Assert.Throws<GenerationException>(() => GenerationRequestValidator.Validate(Request(temperature, topP, maxTokens)));
        Assert.Equal(GenerationErrorCode.InvalidRequest, error.Code);
        Assert.Equal(field, error.Field);
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void Ranges_say_what_they_allow()
    {
        Assert.Equal("between 0 and 2", GenerationLimits.Temperature.Describe());
        Assert.Equal("greater than 0 and at most 1", GenerationLimits.TopP.Describe());
        Assert.Equal("at least 1", GenerationLimits.MaxTokens.Describe());
        Assert.False(GenerationLimits.TopP.Contains(0));
        Assert.True(GenerationLimits.TopP.Contains(1));
        Assert.False(GenerationLimits.MaxTokens.Contains(double.PositiveInfinity));
    }

    [Fact]
    public void Only_a_final_assistant_message_without_calls_is_continued()
    {
        GenerationRequestValidator.Validate(new GenerationRequest { Messages = [new("user", "Hi"), new("assistant", "Once")], ContinueFinalMessage = true });

        GenerationRequest[] refused =
        [
            new() { Messages = [new("user", "Hi")], ContinueFinalMessage = true },
            new() { Messages = [new("user", "Hi"), new("assistant", null) { ToolCalls = [new("call_1", "f", "{}")] }], ContinueFinalMessage = true },
            new() { Prompt = "Once", ContinueFinalMessage = true },
        ];
        foreach (var request in refused)
        {
            var error = Assert.Throws<GenerationException>(() => GenerationRequestValidator.Validate(request));
            Assert.Equal(GenerationErrorCode.InvalidRequest, error.Code);
            Assert.Equal(GenerationField.Messages, error.Field);
        }
    }

    private static GenerationRequest Request(float temperature, float topP, int? maxTokens) => new()
    {
        Prompt = "Once upon a time",
        MaxTokens = maxTokens,
        Sampling = new() { Temperature = temperature, TopP = topP },
    };
}
