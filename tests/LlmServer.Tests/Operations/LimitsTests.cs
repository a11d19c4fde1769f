using System.Net;
using LlmServer.Engine.Generation;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

public sealed class LimitsTests
{
    [Fact]
    public async Task Beyond_the_per_key_rate_limit_requests_get_429_with_Retry_After()
    {
        await using var server = await TestServer.StartAsync(extraArgs:
            [$"--Auth:ApiKeys:0={AuthTests.KeyA}", $"--Auth:ApiKeys:1={AuthTests.KeyB}", "--Limits:RequestsPerMinute=2"]);

        for (var i = 0; i < 2; i++)
        {
            using var allowed = await AuthTests.SendAsync(server, HttpMethod.Get, "/props", AuthTests.KeyA);
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        using var limited = await AuthTests.SendAsync(server, HttpMethod.Get, "/props", AuthTests.KeyA);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        var retryAfter = limited.Headers.RetryAfter?.Delta;
        Assert.NotNull(retryAfter);
        Assert.InRange(retryAfter.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        var error = await AuthTests.ErrorAsync(limited);
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());

        // The limit is per key: another key is still served, and probes are never limited.
        using var otherKey = await AuthTests.SendAsync(server, HttpMethod.Get, "/props", AuthTests.KeyB);
        Assert.Equal(HttpStatusCode.OK, otherKey.StatusCode);
        using var health = await server.Client.GetAsync(new Uri("/health", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Prompts_longer_than_MaxPromptTokens_are_refused_before_admission()
    {
        await using var server = await TestServer.StartAsync(extraArgs: ["--Limits:MaxPromptTokens=8"]);
        var generator = server.Services.GetRequiredService<ITextGenerator>();

        var exception = Assert.Throws<GenerationException>(() => generator.Submit(new GenerationRequest
        {
            Prompt = "Once upon a time there was a little girl who liked to play in the park with her dog",
            MaxTokens = 4,
        }));
        Assert.Equal(GenerationErrorCode.ContextLengthExceeded, exception.Code);
        Assert.Equal("prompt", exception.Parameter);
        Assert.Contains("at most 8 prompt tokens", exception.Message, StringComparison.Ordinal);
        Assert.True(exception.PromptTokens > 8);

        var chat = Assert.Throws<GenerationException>(() => generator.Submit(new GenerationRequest
        {
            Messages = [new ChatTurn("user", "Tell me a long story about a cat, a dog and a bird in the garden")],
            MaxTokens = 4,
        }));
        Assert.Equal("messages", chat.Parameter);

        // Nothing was admitted for the refused requests, and a short prompt still runs.
        Assert.Equal(0, generator.GetStatus().Running + generator.GetStatus().Waiting);
        await using var stream = generator.Submit(new GenerationRequest { Prompt = "Once", MaxTokens = 3 });
        Assert.True(stream.PromptTokens <= 8);
        var result = await stream.CollectAsync();
        Assert.NotEqual(FinishReason.Error, result.Choices[0].Completion.FinishReason);
    }
}
