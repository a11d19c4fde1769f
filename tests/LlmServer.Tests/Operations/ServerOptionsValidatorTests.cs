using LlmServer.Operations;

namespace LlmServer.Tests.Operations;

/// <summary>The <c>Server</c> section's validator reports every problem at once.</summary>
public sealed class ServerOptionsValidatorTests
{
    [Fact]
    public void Every_problem_is_reported_and_the_defaults_pass()
    {
        var result = new ServerOptionsValidator().Validate(null, new ServerOptions { MaxRequestBodyBytes = 10, DrainSeconds = -1, StalledClientSeconds = 0 });

        Assert.True(result.Failed);
        Assert.Equal(3, result.Failures!.Count());
        Assert.True(new ServerOptionsValidator().Validate(null, new ServerOptions()).Succeeded);
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(86_400, true)]
    [InlineData(86_401, false)]
    [InlineData(int.MaxValue, false)]
    public void A_drain_longer_than_a_day_is_refused(int seconds, bool valid)
    {
        // Longer ones overflow the drain's and the host's timers, which would skip the drain.
        Assert.Equal(valid, new ServerOptionsValidator().Validate(null, new ServerOptions { DrainSeconds = seconds }).Succeeded);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(86_400, true)]
    [InlineData(86_401, false)]
    public void A_stalled_client_limit_is_one_second_to_a_day(int seconds, bool valid) =>
        Assert.Equal(valid, new ServerOptionsValidator().Validate(null, new ServerOptions { StalledClientSeconds = seconds }).Succeeded);
}
