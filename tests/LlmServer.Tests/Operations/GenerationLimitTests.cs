using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using LlmServer.Operations.Auth;
using LlmServer.Operations.Limits;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Operations;

/// <summary>
/// <c>Limits:ConcurrentGenerationsPerKey</c> on every front end that runs the model: three requests of one key hold
/// their permits (their bodies are held back, so they cannot finish early), and the fourth gets 429 in the API's shape.
/// </summary>
public sealed class GenerationLimitTests
{
    private const string Chat = """{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":2}""";
    private const string Completion = """{"model":"stories260K","prompt":"Once upon a time","max_tokens":2}""";
    private const string Response = """{"model":"stories260K","input":"Once upon a time","max_output_tokens":16}""";
    private const string Message = """{"model":"stories260K","max_tokens":2,"messages":[{"role":"user","content":"Once upon a time"}]}""";
    private const string Embedding = """{"model":"stories260K","input":"Once upon a time"}""";
    private const string SessionMessage = """{"text":"Once upon a time"}""";

    private static readonly string[] Keys = [.. Enumerable.Range(0, 6).Select(i => $"generation-limit-key-{i}-0123456789")];

    [Fact]
    public async Task Every_front_end_that_runs_the_model_counts_against_the_per_key_limit()
    {
        await using var server = await TestServer.StartAsync(extraArgs:
            [.. Keys.Select((key, i) => $"--Auth:ApiKeys:{i}={key}"), "--Limits:ConcurrentGenerationsPerKey=3"]);

        // One key per front end, so each starts with its full allowance.
        await AssertFourthIsRefusedAsync(server, Keys[0], _ => "/v1/chat/completions", Chat, AssertOpenAiShape);
        await AssertFourthIsRefusedAsync(server, Keys[1], _ => "/v1/completions", Completion, AssertOpenAiShape);
        await AssertFourthIsRefusedAsync(server, Keys[2], _ => "/v1/responses", Response, AssertOpenAiShape);
        await AssertFourthIsRefusedAsync(server, Keys[3], _ => "/v1/messages", Message, AssertAnthropicShape);
        await AssertFourthIsRefusedAsync(server, Keys[4], _ => "/v1/embeddings", Embedding, AssertOpenAiShape);

        // Sessions: one session per request (a session runs one turn at a time).
        var sessions = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            using var created = await AuthTests.SendAsync(server, HttpMethod.Post, "/api/sessions", Keys[5], Json("{}"));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            sessions.Add(JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!);
        }

        await AssertFourthIsRefusedAsync(server, Keys[5], i => $"/api/sessions/{sessions[i]}/messages", SessionMessage, AssertOpenAiShape);
    }

    private static async Task AssertFourthIsRefusedAsync(TestServer server, string key, Func<int, string> path, string body, Action<JsonElement> assertShape)
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = Enumerable.Range(0, 3)
            .Select(i => AuthTests.SendAsync(server, HttpMethod.Post, path(i), key, new HeldBackJson(body, release.Task), HttpCompletionOption.ResponseHeadersRead))
            .ToList();
        try
        {
            await WaitUntilNoPermitIsLeftAsync(server, key);
            using var fourth = await AuthTests.SendAsync(server, HttpMethod.Post, path(3), key, Json(body));
            Assert.Equal(HttpStatusCode.TooManyRequests, fourth.StatusCode);
            Assert.NotNull(fourth.Headers.RetryAfter?.Delta);
            assertShape(JsonDocument.Parse(await fourth.Content.ReadAsStringAsync()).RootElement);
        }
        finally
        {
            release.SetResult();
        }

        // The held requests were admitted, not refused: once their bodies arrive they are served.
        foreach (var request in held)
        {
            using var response = await request;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    /// <summary>Waits for the three held requests to take the key's permits (the limiter's own count is the event).</summary>
    private static async Task WaitUntilNoPermitIsLeftAsync(TestServer server, string key)
    {
        Assert.True(server.Services.GetRequiredService<ApiKeyStore>().TryGetKeyId(key, out var keyId));
        var limiter = server.Services.GetRequiredService<KeyGenerationLimiter>().Limiter;
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var partition = KeyGenerationLimiter.PartitionKey(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ApiKeyAuthentication.KeyIdClaim, keyId)])), null);
        while (limiter.GetStatistics(partition)?.CurrentAvailablePermits != 0)
        {
            await Task.Delay(10, deadline.Token);
        }
    }

    private static void AssertOpenAiShape(JsonElement body) => AssertOpenAiError(body, "rate_limit_error", expectedCode: "rate_limit_exceeded");

    private static void AssertAnthropicShape(JsonElement body)
    {
        Assert.Equal("error", body.GetProperty("type").GetString());
        Assert.Equal("rate_limit_error", body.GetProperty("error").GetProperty("type").GetString());
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>A JSON body whose second half is sent only when <paramref name="release"/> completes.</summary>
    private sealed class HeldBackJson : HttpContent
    {
        private readonly byte[] _bytes;
        private readonly Task _release;

        public HeldBackJson(string json, Task release)
        {
            _bytes = Encoding.UTF8.GetBytes(json);
            _release = release;
            Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var half = _bytes.Length / 2;
            await stream.WriteAsync(_bytes.AsMemory(0, half));
            await stream.FlushAsync();
            await _release;
            await stream.WriteAsync(_bytes.AsMemory(half));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _bytes.Length;
            return true;
        }
    }
}
