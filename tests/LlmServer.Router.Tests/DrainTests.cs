using System.Net;
using System.Text.Json;
using LlmServer.ReplicaProtocol;
using LlmServer.Router.Hosting;
using LlmServer.Router.Routing;
using LlmServer.Router.Tests.Infrastructure;
using LlmServer.Testing;

namespace LlmServer.Router.Tests;

/// <summary>A replica stopped with SIGTERM behind the router: it drains while the other serves.</summary>
public sealed class DrainTests
{
    [Fact]
    public async Task During_a_replicas_drain_its_requests_and_sessions_are_answered_by_the_other_replica_and_a_second_signal_stops_it()
    {
        var data = Directory.CreateTempSubdirectory("llmserver-router-drain-");
        var database = $"--Sessions:Database={Path.Combine(data.FullName, "sessions.db")}";
        try
        {
            // The draining replica runs the 110M model, so its long stream outlasts what the test does during the
            // drain; one after the other, as the first creates the shared database's schema.
            await using var draining = await ReplicaProcess.StartAsync(database, "--model", TestModels.Synth110M, "--Server:DrainSeconds=600");
            await using var other = await ReplicaProcess.StartAsync(database);

            // No periodic probe or load reading after the first: the router can learn of the drain only from the
            // replica's refusal and its marker.
            await using var router = await RouterHost.StartAsync(
                ["--Router:HealthCheckInterval=01:00:00", "--Router:LoadPollInterval=01:00:00"],
                draining.Address,
                other.Address);
            var drainingName = RouterApplication.ReplicaName(draining.Address);
            var otherName = RouterApplication.ReplicaName(other.Address);

            // A session that lives on the replica that will drain (new sessions take turns between equal replicas).
            string? session = null;
            for (var i = 0; i < 4 && session is null; i++)
            {
                using var created = await router.Client.PostAsync(new Uri("/api/sessions", UriKind.Relative), Sse.Json("""{"title":"drain","settings":{"maxTokens":4,"temperature":0}}"""));
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                if (ServedBy(created) == drainingName)
                {
                    using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
                    session = json.RootElement.GetProperty("id").GetString();
                }
            }

            Assert.NotNull(session);

            // A user whose requests hash to the replica that will drain, and a long stream of theirs running there.
            var ring = new BoundedLoadHashRing([draining.Address, other.Address]);
            var user = Enumerable.Range(0, 100).Select(i => $"u{i}").First(u => ring.Pick("user:" + u, _ => 0, 1.25, strict: false) == draining.Address);
            using var streamRequest = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = Sse.Json($$"""{"user":"{{user}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":1900,"ignore_eos":true,"stream":true}"""),
            };
            using var stream = await router.Client.SendAsync(streamRequest, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
            Assert.Equal(drainingName, ServedBy(stream));
            using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
            Assert.Contains("\"content\"", await StreamGuard.NextDataAsync(reader), StringComparison.Ordinal);

            draining.Terminate();
            await WaitUntilDrainingAsync(draining);

            // The user's next request and the session's next turn: the drained replica refuses them (still
            // listening), the router sends them to the other, and the client sees no 503.
            using (var next = await router.Client.PostAsync(
                new Uri("/v1/chat/completions", UriKind.Relative),
                Sse.Json($$"""{"user":"{{user}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4}""")))
            {
                Assert.Equal(HttpStatusCode.OK, next.StatusCode);
                Assert.Equal(otherName, ServedBy(next));
                Assert.False(next.Headers.Contains(DrainMarker.Header));
            }

            Assert.True(await ReplicaDrainingAsync(router, drainingName));
            using (var turn = await router.Client.PostAsync(new Uri($"/api/sessions/{session}/messages", UriKind.Relative), Sse.Json("""{"text":"Once upon a time"}""")))
            {
                Assert.Equal(HttpStatusCode.OK, turn.StatusCode);
                Assert.Equal(otherName, ServedBy(turn));
                using var turnReader = new StreamReader(await turn.Content.ReadAsStreamAsync());
                Assert.Contains("\"type\":\"done\"", (await Sse.ReadAllAsync(turnReader)).LastOrDefault() ?? string.Empty, StringComparison.Ordinal);
            }

            // Still draining (so the requests above were refused, not failed over from a closed port), until a
            // second SIGTERM stops it at once: its stream is cancelled and it exits cleanly.
            Assert.True(await IsDrainingAsync(draining));
            draining.Terminate();
            var rest = await Sse.ReadAllAsync(reader);
            Assert.Contains(rest, e => e.Contains("\"cancelled\"", StringComparison.Ordinal));
            Assert.Equal(0, await draining.WaitForExitAsync(TimeSpan.FromSeconds(120)));
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_drain_refusal_goes_to_the_next_replica_when_the_request_can_be_sent_again_and_to_the_client_when_not()
    {
        await using var refusing = await FakeReplica.StartAsync(refusesAsDraining: true);
        await using var serving = await FakeReplica.StartAsync(refusesAsDraining: false);
        string[] noPolls = ["--Router:HealthCheckInterval=01:00:00", "--Router:LoadPollInterval=01:00:00"];

        // A buffered request keyed to the refusing replica: answered by the other; the refusing one is then skipped.
        await using (var router = await RouterHost.StartAsync(noPolls, refusing.Address, serving.Address))
        {
            var ring = new BoundedLoadHashRing([refusing.Address, serving.Address]);
            var user = Enumerable.Range(0, 100).Select(i => $"u{i}").First(u => ring.Pick("user:" + u, _ => 0, 1.25, strict: false) == refusing.Address);
            var body = $$"""{"user":"{{user}}","messages":[{"role":"user","content":"hi"}]}""";
            for (var i = 0; i < 2; i++)
            {
                using var response = await router.Client.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), Sse.Json(body));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(RouterApplication.ReplicaName(serving.Address), ServedBy(response));
                Assert.Contains("served", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            Assert.Equal(1, refusing.Requests);
            Assert.True(await ReplicaDrainingAsync(router, RouterApplication.ReplicaName(refusing.Address)));
        }

        // Alone behind a router: a streamed body (sent once, not buffered) cannot be sent again, so its refusal
        // reaches the client as the replica wrote it; the replica is marked, and the next request gets the router's 503.
        await using (var router = await RouterHost.StartAsync(noPolls, refusing.Address))
        {
            using var streamed = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StreamContent(new MemoryStream("""{"messages":[{"role":"user","content":"hi"}]}"""u8.ToArray())),
            };
            streamed.Headers.TransferEncodingChunked = true;
            using (var refused = await router.Client.SendAsync(streamed))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.True(refused.Headers.Contains(DrainMarker.Header));
                Assert.Contains("server_shutting_down", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            using var next = await router.Client.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), Sse.Json("""{"messages":[{"role":"user","content":"hi"}]}"""));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, next.StatusCode);
            using var error = JsonDocument.Parse(await next.Content.ReadAsStringAsync());
            Assert.Equal("no_healthy_replica", error.RootElement.GetProperty("error").GetProperty("code").GetString());
            Assert.Equal(2, refusing.Requests);
        }
    }

    private static string ServedBy(HttpResponseMessage response) => Assert.Single(response.Headers.GetValues(RouterApplication.ReplicaHeader));

    private static async Task<bool> IsDrainingAsync(ReplicaProcess replica)
    {
        using var client = new HttpClient { BaseAddress = new Uri(replica.Address), Timeout = TimeSpan.FromSeconds(30) };
        using var response = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return response.StatusCode == HttpStatusCode.ServiceUnavailable && body.RootElement.GetProperty("reason").GetString() == "draining";
    }

    /// <summary>Waits until the replica reports that it drains (the signal is handled on another process's thread).</summary>
    private static async Task WaitUntilDrainingAsync(ReplicaProcess replica)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!await IsDrainingAsync(replica))
        {
            // Another process: its state shows only over HTTP, so it is polled.
            await Task.Delay(50, deadline.Token);
        }
    }

    private static async Task<bool> ReplicaDrainingAsync(RouterHost router, string name)
    {
        using var response = await router.Client.GetAsync(new Uri("/router/health", UriKind.Relative));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty("replicas").EnumerateArray().Single(r => r.GetProperty("name").GetString() == name).GetProperty("draining").GetBoolean();
    }
}
