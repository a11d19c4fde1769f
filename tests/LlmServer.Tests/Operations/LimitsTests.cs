using System.Net;
using LlmServer.Engine.Generation;
using LlmServer.Testing;
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
    public async Task Beyond_the_per_key_concurrent_generations_a_generation_gets_429_until_one_ends()
    {
        // The long stream's ending is held back (the only ignore_eos request here): it is still being answered, and
        // holds key A's permit, when the next requests arrive, however fast the model writes its 2,000 tokens.
        await using var server = await TestServer.StartAsync(
            extraArgs: [$"--Auth:ApiKeys:0={AuthTests.KeyA}", $"--Auth:ApiKeys:1={AuthTests.KeyB}", "--Limits:ConcurrentGenerationsPerKey=1", "--Scheduler:Slots=2", "--Scheduler:ContextSize=4096"],
            configureServices: services => HeldGenerator.Install(services, holds: request => request.IgnoreEos));

        var running = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", AuthTests.KeyA, Completion(stream: true, maxTokens: 2000), HttpCompletionOption.ResponseHeadersRead);
        try
        {
            Assert.Equal(HttpStatusCode.OK, running.StatusCode);
            using var reader = new StreamReader(await running.Content.ReadAsStreamAsync());
            Assert.NotNull(await StreamGuard.NextDataAsync(reader));

            using (var second = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", AuthTests.KeyA, Completion(stream: false, maxTokens: 2)))
            {
                Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
                Assert.NotNull(second.Headers.RetryAfter?.Delta);
                Assert.Equal("rate_limit_exceeded", (await AuthTests.ErrorAsync(second)).GetProperty("code").GetString());
            }

            // Another key has its own allowance, and reading (not generating) is not limited.
            using (var otherKey = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", AuthTests.KeyB, Completion(stream: false, maxTokens: 2)))
            {
                Assert.Equal(HttpStatusCode.OK, otherKey.StatusCode);
            }

            using (var models = await AuthTests.SendAsync(server, HttpMethod.Get, "/v1/models", AuthTests.KeyA))
            {
                Assert.Equal(HttpStatusCode.OK, models.StatusCode);
            }
        }
        finally
        {
            running.Dispose();
        }

        // Once the client has gone, its generation ends and frees the key's allowance.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        HttpStatusCode status;
        do
        {
            using var again = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", AuthTests.KeyA, Completion(stream: false, maxTokens: 2));
            status = again.StatusCode;
            if (status == HttpStatusCode.TooManyRequests)
            {
                // The permit returns when the server's request pipeline ends, which a client cannot see: retrying is the signal.
                await Task.Delay(50);
            }
        }
        while (status == HttpStatusCode.TooManyRequests && DateTime.UtcNow < deadline);

        Assert.Equal(HttpStatusCode.OK, status);
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
        Assert.Equal(GenerationField.Prompt, exception.Field);
        Assert.Contains("at most 8 prompt tokens", exception.Message, StringComparison.Ordinal);
        Assert.True(exception.PromptTokens > 8);

        var chat = Assert.Throws<GenerationException>(() => generator.Submit(new GenerationRequest
        {
            Messages = [new ChatTurn("user", "Tell me a long story about a cat, a dog and a bird in the garden")],
            MaxTokens = 4,
        }));
        Assert.Equal(GenerationField.Messages, chat.Field);

        // Over HTTP the refusal is the OpenAI API's context_length_exceeded, naming the operator's limit.
        using (var response = await server.Client.PostAsync(
            new Uri("/v1/completions", UriKind.Relative),
            new StringContent("""{"model":"stories260K","prompt":"Once upon a time there was a little girl who liked to play in the park","max_tokens":4}""", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var error = await AuthTests.ErrorAsync(response);
            Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
            Assert.Contains("Limits:MaxPromptTokens", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        // Nothing was admitted for the refused requests, and a short prompt still runs.
        Assert.Equal(0, generator.GetStatus().Running + generator.GetStatus().Waiting);
        await using var stream = generator.Submit(new GenerationRequest { Prompt = "Once", MaxTokens = 3 });
        Assert.True(stream.PromptTokens <= 8);
        var result = await stream.CollectAsync();
        Assert.NotEqual(FinishReason.Error, result.Choices[0].Completion.FinishReason);
    }

    private static StringContent Completion(bool stream, int maxTokens) => new(
        $$"""{"model":"stories260K","prompt":"Once upon a time","max_tokens":{{maxTokens}},"temperature":0,"ignore_eos":{{(stream ? "true" : "false")}},"stream":{{(stream ? "true" : "false")}}}""",
        System.Text.Encoding.UTF8,
        "application/json");
}
