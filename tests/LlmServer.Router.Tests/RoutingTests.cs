using System.Net;
using System.Text.Json;
using LlmServer.Router.Hosting;
using LlmServer.Router.Tests.Infrastructure;

namespace LlmServer.Router.Tests;

/// <summary>Two real replicas on stories260K behind the router: conversations stay where their KV cache is warm.</summary>
public sealed class RoutingTests(ReplicaCluster cluster) : IClassFixture<ReplicaCluster>
{
    private HttpClient Client => cluster.Router.Client;

    [Fact]
    public async Task An_OpenAI_conversations_second_turn_reuses_the_first_turns_KV_cache_through_the_router()
    {
        var first = """{"user":"alice","messages":[{"role":"user","content":"Once upon a time there was a dog"}],"max_tokens":16,"temperature":0}""";
        using var response1 = await Client.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), Sse.Json(first));
        Assert.Equal(HttpStatusCode.OK, response1.StatusCode);
        using var body1 = JsonDocument.Parse(await response1.Content.ReadAsStringAsync());
        var answer = body1.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();

        var second = JsonSerializer.Serialize(new
        {
            user = "alice",
            messages = new object[]
            {
                new { role = "user", content = "Once upon a time there was a dog" },
                new { role = "assistant", content = answer },
                new { role = "user", content = "What did the dog do next?" },
            },
            max_tokens = 16,
            temperature = 0,
        });
        using var response2 = await Client.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), Sse.Json(second));
        Assert.Equal(HttpStatusCode.OK, response2.StatusCode);
        using var body2 = JsonDocument.Parse(await response2.Content.ReadAsStringAsync());
        var cached = body2.RootElement.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
        Assert.True(cached > 0, $"turn 2 reported {cached} cached tokens");
        Assert.Equal(Replica(response1), Replica(response2));
    }

    [Fact]
    public async Task Sessions_turns_stay_warm_on_their_replica_and_sessions_spread_over_both()
    {
        var replicasUsed = new HashSet<string>();
        for (var s = 0; s < 8; s++)
        {
            string id;
            using (var created = await Client.PostAsync(new Uri("/api/sessions", UriKind.Relative), Sse.Json("""{"title":"routed","settings":{"maxTokens":12,"temperature":0}}""")))
            {
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
                id = json.RootElement.GetProperty("id").GetString()!;
            }

            string? home = null;
            for (var turn = 0; turn < 3; turn++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{id}/messages") { Content = Sse.Json($$"""{"text":"Tell me part {{turn + 1}} of a story about a cat number {{s}}."}""") };
                using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var replica = Replica(response);
                home ??= replica;
                Assert.Equal(home, replica);

                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var done = (await Sse.ReadAllAsync(reader)).Select(e => JsonDocument.Parse(e).RootElement).Single(e => e.GetProperty("type").GetString() == "done");
                var cached = done.GetProperty("usage").GetProperty("cachedTokens").GetInt32();
                if (turn > 0)
                {
                    Assert.True(cached > 0, $"session {s} turn {turn + 1} reported {cached} cached tokens");
                }
            }

            replicasUsed.Add(home!);
        }

        Assert.Equal(
            new[] { RouterApplication.ReplicaName(cluster.First.Address), RouterApplication.ReplicaName(cluster.Second.Address) }.Order(),
            replicasUsed.Order());
    }

    [Fact]
    public async Task A_stream_passes_through_event_by_event()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Sse.Json("""{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":24,"temperature":0,"stream":true}"""),
        };
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = await Sse.ReadAllAsync(reader);
        Assert.True(events.Count > 3, $"{events.Count} events");
        Assert.Equal("[DONE]", events[^1]);
    }

    private static string Replica(HttpResponseMessage response) =>
        Assert.Single(response.Headers.GetValues(RouterApplication.ReplicaHeader));
}
