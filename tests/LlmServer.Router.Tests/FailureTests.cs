using System.Net;
using System.Text.Json;
using LlmServer.Router.Hosting;
using LlmServer.Router.Routing;
using LlmServer.Router.Tests.Infrastructure;
using LlmServer.Testing;

namespace LlmServer.Router.Tests;

/// <summary>Replicas that are down, or die mid-answer, behind the router.</summary>
public sealed class FailureTests
{
    [Fact]
    public async Task With_no_replica_reachable_the_router_answers_503_with_retry_after_in_the_APIs_error_shape()
    {
        using var first = new ClosedPort();
        using var second = new ClosedPort();
        await using var router = await RouterHost.StartAsync(first.Address, second.Address);

        using var openAi = await router.Client.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), Sse.Json("""{"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, openAi.StatusCode);
        Assert.NotNull(openAi.Headers.RetryAfter);
        using (var body = JsonDocument.Parse(await openAi.Content.ReadAsStringAsync()))
        {
            var error = body.RootElement.GetProperty("error");
            Assert.Equal("no_healthy_replica", error.GetProperty("code").GetString());
            Assert.Equal("server_error", error.GetProperty("type").GetString());
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        }

        using var anthropic = await router.Client.PostAsync(new Uri("/v1/messages", UriKind.Relative), Sse.Json("""{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, anthropic.StatusCode);
        using (var body = JsonDocument.Parse(await anthropic.Content.ReadAsStringAsync()))
        {
            Assert.Equal("error", body.RootElement.GetProperty("type").GetString());
            Assert.Equal("overloaded_error", body.RootElement.GetProperty("error").GetProperty("type").GetString());
        }

        // Once the health checks have taken both out, the same answer comes without trying them.
        await router.WaitForHealthAsync(router.Replicas[0], "unhealthy");
        await router.WaitForHealthAsync(router.Replicas[1], "unhealthy");
        using var again = await router.Client.GetAsync(new Uri("/v1/models", UriKind.Relative));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, again.StatusCode);
    }

    [Fact]
    public async Task A_request_that_never_reached_a_replica_is_sent_to_another()
    {
        await using var live = await ReplicaProcess.StartAsync();
        using var closed = new ClosedPort();
        var dead = closed.Address;
        await using var router = await RouterHost.StartAsync(dead, live.Address);

        // Keys that hash to the dead replica (its health still unknown): each must still be answered, by the live one.
        var ring = new BoundedLoadHashRing([dead, live.Address]);
        var users = Enumerable.Range(0, 100).Select(i => $"u{i}").Where(u => ring.Pick("user:" + u, _ => 0, 1.25, strict: false) == dead).Take(3).ToArray();
        Assert.Equal(3, users.Length);
        foreach (var user in users)
        {
            using var response = await router.Client.PostAsync(
                new Uri("/v1/chat/completions", UriKind.Relative),
                Sse.Json($$"""{"user":"{{user}}","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(RouterApplication.ReplicaName(live.Address), Assert.Single(response.Headers.GetValues(RouterApplication.ReplicaHeader)));
        }
    }

    [Fact]
    public async Task A_replica_killed_mid_answer_ends_the_stream_with_an_error_event_and_the_next_turn_runs_on_the_other()
    {
        // Replicas are child processes, which no test hook reaches: the answer is still streaming at the kill only
        // because it is long, so it runs on the slow 110M model, as the drain and failover tests do (a margin, not a gate).
        await using var a = await ReplicaProcess.StartAsync("--model", TestModels.Synth110M);
        await using var b = await ReplicaProcess.StartAsync("--model", TestModels.Synth110M);
        await using var router = await RouterHost.StartAsync(a.Address, b.Address);
        await router.WaitForHealthAsync(a.Address, "healthy");
        await router.WaitForHealthAsync(b.Address, "healthy");

        const string body = """{"user":"carol","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":1500,"ignore_eos":true,"stream":true}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Sse.Json(body) };
        using var response = await router.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var served = Assert.Single(response.Headers.GetValues(RouterApplication.ReplicaHeader));
        var (victim, survivor) = served == RouterApplication.ReplicaName(a.Address) ? (a, b) : (b, a);

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Contains("\"content\"", await StreamGuard.NextDataAsync(reader), StringComparison.Ordinal);
        await victim.KillAsync();

        var rest = await Sse.ReadAllAsync(reader);
        Assert.Equal("[DONE]", rest[^1]);
        using (var error = JsonDocument.Parse(rest[^2]))
        {
            Assert.Equal("replica_lost", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        // The conversation's next turn runs on the survivor, at once (the dead replica is skipped or retried past).
        using var next = await router.Client.PostAsync(
            new Uri("/v1/chat/completions", UriKind.Relative),
            Sse.Json("""{"user":"carol","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}"""));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(RouterApplication.ReplicaName(survivor.Address), Assert.Single(next.Headers.GetValues(RouterApplication.ReplicaHeader)));

        // A replica that comes back is used again.
        await router.WaitForHealthAsync(victim.Address, "unhealthy");
        await victim.RestartAsync();
        await router.WaitForHealthAsync(victim.Address, "healthy");
        using var back = await router.Client.PostAsync(
            new Uri("/v1/chat/completions", UriKind.Relative),
            Sse.Json("""{"user":"carol","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}"""));
        Assert.Equal(HttpStatusCode.OK, back.StatusCode);
        Assert.Equal(served, Assert.Single(back.Headers.GetValues(RouterApplication.ReplicaHeader)));
    }
}
