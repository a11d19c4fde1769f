using System.Net;
using LlmServer.Operations;
using LlmServer.Sessions;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.SignalR.Client;
using Npgsql;
using static LlmServer.Tests.Sessions.HubTestExtensions;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// Two servers sharing sessions in PostgreSQL: a stop sent to the one that does not run the turn (REST <c>/stop</c> or
/// the hub's <c>StopGeneration</c>, also right after the listening connections were dropped) stops it on the other, and
/// the answer is stored <c>cancelled</c>; a stop whose announcement was lost is found by the sweep (a short
/// <c>Sessions:StopSweepSeconds</c> here, waited for as the engine's cancellation). The running
/// server's decode is held at a gate until its engine has seen the stop, so the turn cannot end on its own first.
/// </summary>
public sealed class CrossReplicaStopTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const int LongTurn = 400;
    private const int DecodesBeforeTheGate = 4;

    private static async Task<long> TerminateListenersAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var terminate = new NpgsqlCommand(
            """
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = @name AND pid <> pg_backend_pid();
            """,
            connection);
        terminate.Parameters.AddWithValue("name", PostgresSessionStore.ListenerApplicationName);
        return (long)(await terminate.ExecuteScalarAsync())!;
    }

    /// <summary>Records a stop as another replica would, without announcing it (an announcement lost on the way).</summary>
    private static async Task RecordStopUnannouncedAsync(string connectionString, string sessionId)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var record = new NpgsqlCommand("UPDATE sessions SET stop_requested = 1 WHERE id = @id AND lease_holder IS NOT NULL;", connection);
        record.Parameters.AddWithValue("id", sessionId);
        Assert.Equal(1, await record.ExecuteNonQueryAsync());
    }

    [Fact]
    public async Task A_stop_sent_to_another_replica_stops_the_turn_there_and_its_answer_is_stored_cancelled()
    {
        var connection = await postgres.CreateDatabaseAsync();
        string[] Shared(string replicaId) => ["--Sessions:Store=postgres", $"--ConnectionStrings:Sessions={connection}", $"--Sessions:ReplicaId={replicaId}"];
        var gate = new DecodeGate();
        HeldGenerator? cancellations = null;
        var runner = await SessionTestServer.StartAsync(
            null,
            services =>
            {
                gate.Install(services);
                OperationsExtensions.DecorateTextGenerator(services, (_, engine) => cancellations = new HeldGenerator(engine, holdEndings: false));
            },
            [.. Shared("runner"), "--Sessions:StopSweepSeconds=1", "--Sessions:StopListenProbeSeconds=1"]);
        var other = await SessionTestServer.StartAsync(null, Shared("other"));
        try
        {
            await using var runnerHub = await runner.ConnectAsync();
            await using var otherHub = await other.ConnectAsync();
            var stops = new (string Via, Func<string, Task> Stop)[]
            {
                ("rest", async id =>
                {
                    using var response = await other.Server.Client.PostAsync(new Uri($"/api/sessions/{id}/stop", UriKind.Relative), null);
                    Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
                }),
                ("hub", id => otherHub.InvokeAsync("StopGeneration", id)),
                ("rest, the listening connections dropped", async id =>
                {
                    // Announced while the runner's listener may be gone: its check after reconnecting stops the turn.
                    Assert.True(await TerminateListenersAsync(connection) >= 1);
                    using var response = await other.Server.Client.PostAsync(new Uri($"/api/sessions/{id}/stop", UriKind.Relative), null);
                    Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
                }),
                ("recorded, its announcement lost", id => RecordStopUnannouncedAsync(connection, id)),
            };

            foreach (var (via, stop) in stops)
            {
                var session = await runnerHub.CreateAsync(maxTokens: LongTurn, title: via);
                var events = new List<ChatStreamEvent>();
                gate.CloseAfter(DecodesBeforeTheGate);
                try
                {
                    await runnerHub.Send(session.Id, "Once upon a time").ReadEachAsync(async (item, cancellationToken) =>
                    {
                        events.Add(item);
                        if (events.Count == 1)
                        {
                            // The turn holds its lease once it streams; the other server records the stop with it, and
                            // the runner's engine sees it (the event) before the gate lets its decode go on.
                            var reached = cancellations!.NextCancellation();
                            await stop(session.Id);
                            await reached.WaitAsync(cancellationToken);
                            gate.Open();
                        }
                    });
                }
                finally
                {
                    gate.Open();
                }

                var done = AssertWellFormed(events);
                Assert.Equal("cancelled", done.FinishReason);
                Assert.True(done.Usage!.CompletionTokens < LongTurn);

                // Stored as a local stop stores it, and read as such from the server that asked.
                var assistant = (await otherHub.GetAsync(session.Id)).Messages[^1];
                Assert.Equal(("assistant", "cancelled", Text(events)), (assistant.Role, assistant.FinishReason, assistant.Content));
            }
        }
        finally
        {
            await other.DisposeAsync();
            await runner.DisposeAsync();
            other.DeleteFiles();
            runner.DeleteFiles();
        }
    }
}
