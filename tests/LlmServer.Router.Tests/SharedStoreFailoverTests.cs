using System.Net;
using System.Text.Json;
using LlmServer.Router.Hosting;
using LlmServer.Router.Tests.Infrastructure;
using LlmServer.Testing;
using LlmServer.Tests.Sessions;

namespace LlmServer.Router.Tests;

/// <summary>Two replicas sharing sessions in PostgreSQL behind the router; one is killed in the middle of an answer.</summary>
public sealed class SharedStoreFailoverTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task A_replica_killed_mid_answer_leaves_the_conversation_to_its_last_checkpoint_and_the_next_turn_runs_on_the_other()
    {
        var connection = await postgres.CreateDatabaseAsync();

        // synth110m (random weights) keeps a long answer streaming until the kill; checkpoints every 2 tokens; a short lease.
        string[] Replica(string id) =>
        [
            "--model", TestModels.Synth110M, "--Scheduler:Slots=1", "--Scheduler:ContextSize=4096",
            "--Sessions:Store=postgres", $"--ConnectionStrings:Sessions={connection}", $"--Sessions:ReplicaId={id}",
            "--Sessions:CheckpointTokens=2", "--Sessions:TurnLeaseSeconds=2",
        ];
        await using var a = await ReplicaProcess.StartAsync(Replica("a"));
        await using var b = await ReplicaProcess.StartAsync(Replica("b"));
        await using var router = await RouterHost.StartAsync(a.Address, b.Address);
        await router.WaitForHealthAsync(a.Address, "healthy");
        await router.WaitForHealthAsync(b.Address, "healthy");
        var client = router.Client;

        string id;
        string home;
        using (var created = await client.PostAsync(new Uri("/api/sessions", UriKind.Relative), Sse.Json("""{"title":"failover","settings":{"maxTokens":2000,"temperature":0}}""")))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            home = Assert.Single(created.Headers.GetValues(RouterApplication.ReplicaHeader));
            using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
            id = json.RootElement.GetProperty("id").GetString()!;
        }

        var (victim, survivor) = home == RouterApplication.ReplicaName(a.Address) ? (a, b) : (b, a);
        using (var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{id}/messages") { Content = Sse.Json("""{"text":"Once upon a time"}""") })
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(home, Assert.Single(response.Headers.GetValues(RouterApplication.ReplicaHeader)));
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.Contains("\"delta\"", await StreamGuard.NextDataAsync(reader), StringComparison.Ordinal);

            // The event that proves a checkpoint: the other replica reads the partial answer from the shared store.
            await WaitForCheckpointAsync(survivor, id);
            await victim.KillAsync();

            var rest = await Sse.ReadAllAsync(reader);
            using var last = JsonDocument.Parse(rest[^1]);
            Assert.Equal("error", last.RootElement.GetProperty("type").GetString());
            Assert.Equal("replica_lost", last.RootElement.GetProperty("code").GetString());
        }

        // The stored conversation is intact up to the last checkpoint, read through the router from the survivor.
        var stored = await MessagesAsync(client, id);
        Assert.Equal(["user", "assistant"], stored.Select(m => m.GetProperty("role").GetString()));
        var partial = stored[1].GetProperty("content").GetString();
        Assert.False(string.IsNullOrEmpty(partial));

        using (var shorter = await client.PatchAsync(new Uri($"/api/sessions/{id}", UriKind.Relative), Sse.Json("""{"settings":{"maxTokens":8,"temperature":0}}""")))
        {
            Assert.Equal(HttpStatusCode.OK, shorter.StatusCode);
        }

        // The next turn runs on the survivor once the dead replica's turn lease runs out (busy until then), with the
        // history prefilled there; the cut answer is kept as interrupted.
        JsonElement done = default;
        await EventuallyAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{id}/messages") { Content = Sse.Json("""{"text":"And then?"}""") };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            // busy: the dead replica's lease has not run out yet; 503: the router has no healthy replica right now
            // (the survivor's probe can time out on a loaded machine). Both say to retry.
            if (response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.ServiceUnavailable)
            {
                return false;
            }

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(RouterApplication.ReplicaName(survivor.Address), Assert.Single(response.Headers.GetValues(RouterApplication.ReplicaHeader)));
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var events = await Sse.ReadAllAsync(reader);
            done = JsonDocument.Parse(events[^1]).RootElement.Clone();
            return true;
        });
        Assert.Equal("done", done.GetProperty("type").GetString());
        Assert.True(done.GetProperty("usage").GetProperty("promptTokens").GetInt32() > 0);

        var after = await MessagesAsync(client, id);
        Assert.Equal(["user", "assistant", "user", "assistant"], after.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal((partial, "interrupted"), (after[1].GetProperty("content").GetString(), after[1].GetProperty("finishReason").GetString()));
    }

    private static async Task<JsonElement[]> MessagesAsync(HttpClient client, string id)
    {
        using var detail = JsonDocument.Parse(await client.GetStringAsync(new Uri($"/api/sessions/{id}", UriKind.Relative)));
        return [.. detail.RootElement.GetProperty("messages").EnumerateArray().Select(m => m.Clone())];
    }

    private static async Task WaitForCheckpointAsync(ReplicaProcess replica, string id)
    {
        using var direct = new HttpClient { BaseAddress = new Uri(replica.Address) };
        await EventuallyAsync(async () =>
        {
            var messages = await MessagesAsync(direct, id);
            return messages.Length == 2 && !string.IsNullOrEmpty(messages[1].GetProperty("content").GetString());
        });
    }

    /// <summary>Polls <paramref name="condition"/> until it holds (the event), failing after a generous deadline.</summary>
    private static async Task EventuallyAsync(Func<Task<bool>> condition)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        while (!await condition())
        {
            // Another process's checkpoint shows only through its HTTP API, which pushes nothing: it is polled.
            await Task.Delay(100, deadline.Token);
        }
    }
}
