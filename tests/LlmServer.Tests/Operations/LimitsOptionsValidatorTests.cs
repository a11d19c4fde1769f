using LlmServer.Operations;
using LlmServer.Operations.Limits;

namespace LlmServer.Tests.Operations;

/// <summary>The <c>Limits</c> section's validator reports every problem at once.</summary>
public sealed class LimitsOptionsValidatorTests
{
    [Fact]
    public void Every_problem_is_reported_and_the_defaults_pass()
    {
        var result = new LimitsOptionsValidator().Validate(null, new LimitsOptions { RequestsPerMinute = -1, ConcurrentGenerationsPerKey = -1, OpenResponsesPerKey = -1, MaxPromptTokens = -1 });

        Assert.True(result.Failed);
        Assert.Equal(4, result.Failures!.Count());
        Assert.True(new LimitsOptionsValidator().Validate(null, new LimitsOptions()).Succeeded);
    }

    [Theory]
    [InlineData(0, 0, true, 0)]
    [InlineData(2, 0, true, 8)]
    [InlineData(2, 2, true, 2)]
    [InlineData(2, 1, false, 1)]
    [InlineData(0, 3, true, 3)]
    public void Open_responses_are_at_least_the_concurrent_generations_and_default_to_four_times_them(int generations, int open, bool valid, int effective)
    {
        var options = new LimitsOptions { ConcurrentGenerationsPerKey = generations, OpenResponsesPerKey = open };

        Assert.Equal(valid, new LimitsOptionsValidator().Validate(null, options).Succeeded);
        Assert.Equal(effective, options.EffectiveOpenResponsesPerKey);
    }
}
