using System.Net;
using System.Text.Json;
using LlmServer.Router.Errors;
using LlmServer.Router.Hosting;
using LlmServer.Router.Tests.Infrastructure;
using LlmServer.Testing;
using LlmServer.Tests.Sessions;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;

namespace LlmServer.Router.Tests;

/// <summary>
/// Sessions behind the router in both supported topologies, with two real replicas each: SQLite replicas (a store
/// each: a session is served only by its replica, the list is merged) and replicas sharing PostgreSQL (any replica
/// serves a session; a stop sent to one stops the turn the other runs).
/// </summary>
public sealed class SessionTopologyTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task With_sqlite_replicas_each_sessions_requests_reach_its_replica_the_list_is_merged_and_a_missing_replica_is_a_clear_503()
    {
        await using var a = await ReplicaProcess.StartAsync();
        await using var b = await ReplicaProcess.StartAsync();
        await using var router = await RouterHost.StartAsync(a.Address, b.Address);
        var stores = await router.WaitForStoresAsync(a.Address, b.Address);
        Assert.NotEqual(stores[0], stores[1]);

        // A session made over the hub through the router: no REST answer ever shows the router its id.
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(new Uri(router.Address), "/hubs/chat"), o => (o.SkipNegotiation, o.Transports) = (true, HttpTransportType.WebSockets))
            .Build();
        string hubSession;
        await using (hub)
        {
            await hub.StartAsync();
            var created = await hub.InvokeAsync<JsonElement>("CreateSession", new { title = "over the hub", settings = new { maxTokens = 4, temperature = 0 } });
            hubSession = created.GetProperty("id").GetString()!;
        }

        var hubHolder = await HolderAsync(hubSession, a, b);
        var otherReplica = hubHolder == a ? b : a;

        // A REST session on the other replica (new sessions take turns between equally loaded replicas).
        string? restSession = null;
        for (var i = 0; i < 4 && restSession is null; i++)
        {
            using var created = await router.Client.PostAsync(new Uri("/api/sessions", UriKind.Relative), Sse.Json("""{"title":"over REST","settings":{"maxTokens":4,"temperature":0}}"""));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            if (ServedBy(created) == RouterApplication.ReplicaName(otherReplica.Address))
            {
                restSession = await IdAsync(created);
            }
        }

        Assert.NotNull(restSession);

        // A router that has learned nothing (restarted) still sends every request of each session to its replica.
        await using var fresh = await RouterHost.StartAsync(a.Address, b.Address);
        await fresh.WaitForStoresAsync(a.Address, b.Address);
        foreach (var (session, holder) in new[] { (hubSession, hubHolder), (restSession, otherReplica) })
        {
            using (var detail = await fresh.Client.GetAsync(new Uri($"/api/sessions/{session}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.OK, detail.StatusCode);
                Assert.Equal(RouterApplication.ReplicaName(holder.Address), ServedBy(detail));
            }

            using var turn = await fresh.Client.PostAsync(new Uri($"/api/sessions/{session}/messages", UriKind.Relative), Sse.Json("""{"text":"Once upon a time"}"""));
            Assert.Equal(HttpStatusCode.OK, turn.StatusCode);
            Assert.Equal(RouterApplication.ReplicaName(holder.Address), ServedBy(turn));
            using var reader = new StreamReader(await turn.Content.ReadAsStreamAsync());
            Assert.Contains("\"type\":\"done\"", (await Sse.ReadAllAsync(reader)).LastOrDefault() ?? string.Empty, StringComparison.Ordinal);
        }

        // Each replica lists its own sessions (the loop above may have made some on the hub's replica too); the
        // router lists them all.
        string[] onHolder;
        string[] onOther;
        using (var holderClient = Direct(hubHolder))
        using (var otherClient = Direct(otherReplica))
        {
            onHolder = await ListAsync(holderClient);
            onOther = await ListAsync(otherClient);
        }

        Assert.Contains(hubSession, onHolder);
        Assert.DoesNotContain(restSession, onHolder);
        Assert.Contains(restSession, onOther);
        Assert.DoesNotContain(hubSession, onOther);
        Assert.Equal(onHolder.Concat(onOther).Order(), (await ListAsync(fresh.Client)).Order());

        // The replica of one store gone: its session and the list are refused as such, the other's session is served.
        await otherReplica.KillAsync();
        await fresh.WaitForHealthAsync(otherReplica.Address, "unhealthy");
        await AssertSessionReplicaUnavailableAsync(fresh.Client, $"/api/sessions/{restSession}");
        await AssertSessionReplicaUnavailableAsync(fresh.Client, "/api/sessions");
        using var served = await fresh.Client.GetAsync(new Uri($"/api/sessions/{hubSession}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task With_a_shared_store_either_replica_serves_a_session_and_a_stop_is_taken_by_the_replica_not_running_its_turn()
    {
        var connection = await postgres.CreateDatabaseAsync();

        // synth110m (random weights) keeps writing until max tokens; checkpoints every 2 tokens.
        string[] Replica(string id) =>
        [
            "--model", TestModels.Synth110M, "--Scheduler:Slots=1", "--Scheduler:ContextSize=4096",
            "--Sessions:Store=postgres", $"--ConnectionStrings:Sessions={connection}", $"--Sessions:ReplicaId={id}",
            "--Sessions:CheckpointTokens=2",
        ];
        await using var a = await ReplicaProcess.StartAsync(Replica("a"));
        await using var b = await ReplicaProcess.StartAsync(Replica("b"));
        await using var router = await RouterHost.StartAsync(a.Address, b.Address);
        var stores = await router.WaitForStoresAsync(a.Address, b.Address);
        Assert.Equal(stores[0], stores[1]);

        // Sessions made on each replica: the list through the router (one replica's answer) has both.
        using var directA = Direct(a);
        using var directB = Direct(b);
        var onA = await IdAsync(await directA.PostAsync(new Uri("/api/sessions", UriKind.Relative), Sse.Json("""{"title":"on a","settings":{"maxTokens":2000,"temperature":0}}""")));
        var onB = await IdAsync(await directB.PostAsync(new Uri("/api/sessions", UriKind.Relative), Sse.Json("""{"title":"on b"}""")));
        Assert.Equal(new[] { onA, onB }.Order(), (await ListAsync(router.Client)).Order());

        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{onA}/messages") { Content = Sse.Json("""{"text":"Once upon a time"}""") };
        using var response = await router.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var asked = ServedBy(response) == RouterApplication.ReplicaName(a.Address) ? directB : directA;
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Contains("\"delta\"", await StreamGuard.NextDataAsync(reader), StringComparison.Ordinal);

        // The stop goes to the replica that does not run the turn, which takes it. That it ends the turn as cancelled
        // is CrossReplicaStopTests' (in process, with the decode held): a child replica's decode cannot be held, and
        // the turn could end on its own first.
        using (var stop = await asked.PostAsync(new Uri($"/api/sessions/{onA}/stop", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        }

        var rest = await Sse.ReadAllAsync(reader);
        using var done = JsonDocument.Parse(rest[^1]);
        Assert.Equal("done", done.RootElement.GetProperty("type").GetString());

        // The other replica reads the answer as the running one ended it: one store.
        using var detail = JsonDocument.Parse(await asked.GetStringAsync(new Uri($"/api/sessions/{onA}", UriKind.Relative)));
        var answer = detail.RootElement.GetProperty("messages").EnumerateArray().Last();
        Assert.Equal(
            ("assistant", done.RootElement.GetProperty("finishReason").GetString()),
            (answer.GetProperty("role").GetString(), answer.GetProperty("finishReason").GetString()));
    }

    private static HttpClient Direct(ReplicaProcess replica) => new() { BaseAddress = new Uri(replica.Address), Timeout = TimeSpan.FromSeconds(180) };

    private static string ServedBy(HttpResponseMessage response) => Assert.Single(response.Headers.GetValues(RouterApplication.ReplicaHeader));

    private static async Task<string> IdAsync(HttpResponseMessage created)
    {
        using (created)
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
            return json.RootElement.GetProperty("id").GetString()!;
        }
    }

    private static async Task<string[]> ListAsync(HttpClient client)
    {
        using var response = await client.GetAsync(new Uri("/api/sessions", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var list = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return [.. list.RootElement.EnumerateArray().Select(s => s.GetProperty("id").GetString()!)];
    }

    /// <summary>The replica whose own store has the session (asked directly).</summary>
    private static async Task<ReplicaProcess> HolderAsync(string session, params ReplicaProcess[] replicas)
    {
        foreach (var replica in replicas)
        {
            using var client = Direct(replica);
            using var response = await client.GetAsync(new Uri($"/api/sessions/{session}", UriKind.Relative));
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return replica;
            }
        }

        throw new InvalidOperationException($"No replica holds session {session}.");
    }

    private static async Task AssertSessionReplicaUnavailableAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(RouterErrors.SessionReplicaUnavailableCode, error.RootElement.GetProperty("error").GetProperty("code").GetString());
    }
}
