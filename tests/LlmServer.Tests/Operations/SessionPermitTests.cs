using System.Net;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Operations.Auth;
using LlmServer.Operations.Limits;
using LlmServer.Sessions;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Sessions;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Operations;

/// <summary>
/// <c>Limits:ConcurrentGenerationsPerKey</c> holds for session turns: a turn keeps running after its client went
/// away (for the resume grace period), and it keeps its key's permit until it ends, not until its request or hub
/// stream does. The engine's endings are held back (<see cref="HeldGenerator"/>), so "the turn still runs" is a fact,
/// and the server's own end of each call is an event (<see cref="CallEnds"/>), never a guess about time.
/// </summary>
public sealed class SessionPermitTests(ITestOutputHelper output)
{
    private const string Key = KeyedSessionServer.Key;
    private const string Completion = """{"model":"stories260K","prompt":"Once upon a time","max_tokens":2}""";

    /// <summary>Streamed, so that a generation admitted by mistake answers with its headers at once instead of waiting on its held ending.</summary>
    private const string StreamedCompletion = """{"model":"stories260K","prompt":"Once upon a time","max_tokens":2,"stream":true}""";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task Over_HTTP_a_turn_whose_client_went_away_keeps_the_key_permit_until_it_ends()
    {
        await using var fixture = await StartAsync();
        var server = fixture.Server;
        var sessionId = await CreateSessionAsync(server);
        var path = $"/api/sessions/{sessionId}/messages";

        // Start a turn, read its first event and go away mid-stream; wait until the server has finished with the request.
        using (var turn = await AuthTests.SendAsync(server, HttpMethod.Post, path, Key, Body("""{"text":"Once upon a time"}"""), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, turn.StatusCode);
            var reader = new StreamReader(await turn.Content.ReadAsStreamAsync());
            Assert.Equal(ChatStreamEvent.DeltaType, (await NextEventAsync(reader))!.Type);
        }

        await Ends(fixture).Ended("POST " + path).WaitAsync(fixture.Hang);
        Assert.True(fixture.Registry.IsGenerating(sessionId));

        // The turn runs on and holds the key's one permit: another generation of the key is refused, in the API's shape.
        using (var refused = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", Key, Body(StreamedCompletion), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
            AssertOpenAiError(JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement, "rate_limit_error", expectedCode: "rate_limit_exceeded");
        }

        // Re-attaching to the running turn takes no permit of its own.
        using var resume = await AuthTests.SendAsync(server, HttpMethod.Get, $"/api/sessions/{sessionId}/events", Key, completion: HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resume.StatusCode);
        var resumed = new StreamReader(await resume.Content.ReadAsStreamAsync());
        Assert.Equal(1, (await NextEventAsync(resumed))!.Seq);

        // End the turn and read its last event: by then its permit is back, so the key's next generation is admitted.
        using (var stop = await AuthTests.SendAsync(server, HttpMethod.Post, $"/api/sessions/{sessionId}/stop", Key))
        {
            Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        }

        var ending = await LastEventAsync(resumed);
        Assert.Equal(ChatStreamEvent.DoneType, ending.Type);
        Assert.False(fixture.Registry.IsGenerating(sessionId));

        fixture.Held.Release();
        using var admitted = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", Key, Body(Completion));
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
    }

    [Fact]
    public async Task Over_the_hub_a_turn_whose_connection_dropped_keeps_the_key_permit_until_it_ends()
    {
        await using var fixture = await StartAsync();
        var server = fixture.Server;

        // Start a turn on the hub, read its first event and drop the connection; wait until the server released the invocation.
        var dropped = await fixture.ConnectAsync();
        var sessionId = (await dropped.InvokeAsync<SessionInfo>("CreateSession", (object?)null)).Id;
        try
        {
            await foreach (var item in dropped.StreamAsync<ChatStreamEvent>("SendMessage", sessionId, "Once upon a time"))
            {
                Assert.Equal(ChatStreamEvent.DeltaType, item.Type);
                await dropped.StopAsync();
            }
        }
        catch (Exception ex) when (ex is HubException or OperationCanceledException or InvalidOperationException or IOException)
        {
            output.WriteLine($"stream ended by the drop: {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            await dropped.DisposeAsync();
        }

        await Ends(fixture).Ended("hub SendMessage").WaitAsync(fixture.Hang);
        Assert.True(fixture.Registry.IsGenerating(sessionId));

        // Another generation of the key, on the hub or over HTTP, is refused while the turn runs.
        await using var hub = await fixture.ConnectAsync();
        var other = (await hub.InvokeAsync<SessionInfo>("CreateSession", (object?)null)).Id;
        var refusedTurn = hub.StreamAsync<ChatStreamEvent>("SendMessage", other, "Hello").GetAsyncEnumerator();
        try
        {
            var limited = await Assert.ThrowsAsync<HubException>(async () => await refusedTurn.MoveNextAsync());
            Assert.StartsWith("rate_limit_exceeded:", limited.Message.Split("HubException: ").Last(), StringComparison.Ordinal);
        }
        finally
        {
            await refusedTurn.DisposeAsync();
        }

        using (var refused = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", Key, Body(StreamedCompletion), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        }

        // Re-attaching is admitted; stopping the turn ends it, and with its last event its permit is back.
        var resumed = hub.StreamAsync<ChatStreamEvent>("ResumeStream", sessionId, 0L).GetAsyncEnumerator();
        try
        {
            Assert.True(await resumed.MoveNextAsync());
            Assert.Equal(1, resumed.Current.Seq);
            await hub.InvokeAsync("StopGeneration", sessionId);
            Assert.Equal(ChatStreamEvent.DoneType, (await resumed.LastEventAsync()).Type);
        }
        finally
        {
            await resumed.DisposeAsync();
        }

        fixture.Held.Release();
        var events = await hub.StreamAsync<ChatStreamEvent>("SendMessage", other, "Hello").CollectAsync();
        Assert.Equal(ChatStreamEvent.DoneType, events[^1].Type);
    }

    [Fact]
    public async Task Over_the_hub_a_stream_holds_one_of_the_keys_open_responses_until_it_ends()
    {
        // Generations are not limited here: only the open-response allowance (one) can refuse.
        await using var fixture = await KeyedSessionServer.StartAsync(null, "--Limits:ConcurrentGenerationsPerKey=0", "--Limits:OpenResponsesPerKey=1");
        await using var hub = await fixture.ConnectAsync();
        var first = (await hub.InvokeAsync<SessionInfo>("CreateSession", (object?)null)).Id;
        var other = (await hub.InvokeAsync<SessionInfo>("CreateSession", (object?)null)).Id;

        // The turn's ending is held: its stream stays open while another call of the key comes, on the hub or over HTTP.
        var open = hub.StreamAsync<ChatStreamEvent>("SendMessage", first, "Once upon a time").GetAsyncEnumerator();
        try
        {
            Assert.True(await open.MoveNextAsync());
            var refusedTurn = hub.StreamAsync<ChatStreamEvent>("SendMessage", other, "Hello").GetAsyncEnumerator();
            try
            {
                var limited = await Assert.ThrowsAsync<HubException>(async () => await refusedTurn.MoveNextAsync());
                Assert.StartsWith("rate_limit_exceeded: Too many open responses", limited.Message.Split("HubException: ").Last(), StringComparison.Ordinal);
            }
            finally
            {
                await refusedTurn.DisposeAsync();
            }

            using (var refused = await AuthTests.SendAsync(fixture.Server, HttpMethod.Post, "/v1/completions", Key, Body(StreamedCompletion), HttpCompletionOption.ResponseHeadersRead))
            {
                Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
                AssertOpenAiError(JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement, "rate_limit_error", expectedCode: "rate_limit_exceeded");
            }

            await hub.InvokeAsync("StopGeneration", first);
            Assert.Equal(ChatStreamEvent.DoneType, (await open.LastEventAsync()).Type);
        }
        finally
        {
            await open.DisposeAsync();
        }

        // Once the server has ended the stream (the limiter's own count is the event), the key may open another.
        var partition = KeyGenerationLimiter.PartitionKey(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ApiKeyAuthentication.KeyIdClaim, KeyIdOf(fixture.Server))])), null);
        var responses = fixture.Server.Services.GetRequiredService<KeyGenerationLimiter>().OpenResponses;
        while (responses.GetStatistics(partition)?.CurrentAvailablePermits != 1)
        {
            await Task.Delay(10, fixture.Hang);
        }

        fixture.Held.Release();
        var events = await hub.StreamAsync<ChatStreamEvent>("SendMessage", other, "Hello").CollectAsync();
        Assert.Equal(ChatStreamEvent.DoneType, events[^1].Type);
    }

    private static string KeyIdOf(TestServer server)
    {
        Assert.True(server.Services.GetRequiredService<ApiKeyStore>().TryGetKeyId(Key, out var keyId));
        return keyId;
    }

    private static async Task<string> CreateSessionAsync(TestServer server)
    {
        using var created = await AuthTests.SendAsync(server, HttpMethod.Post, "/api/sessions", Key, Body("{}"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (await created.Content.ReadFromJsonAsync<SessionInfo>(Json))!.Id;
    }

    private static async Task<ChatStreamEvent?> NextEventAsync(StreamReader reader) =>
        await StreamGuard.NextDataAsync(reader) is { } data ? JsonSerializer.Deserialize<ChatStreamEvent>(data, Json) : null;

    private static async Task<ChatStreamEvent> LastEventAsync(StreamReader reader)
    {
        ChatStreamEvent? last = null;
        while (await NextEventAsync(reader) is { } item)
        {
            last = item;
        }

        return last ?? throw new InvalidOperationException("The stream ended without an event.");
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The keyed server with a long resume grace and observed call ends.</summary>
    private static Task<KeyedSessionServer> StartAsync() => KeyedSessionServer.StartAsync(CallEnds.Install, "--Sessions:ResumeGraceSeconds=3600");

    private static CallEnds Ends(KeyedSessionServer server) => server.Server.Services.GetRequiredService<CallEnds>();
}
