using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Data.Sqlite;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// A session store another connection has locked (a backup, a second process on the file): the hub and the REST
/// mirror refuse with <c>unavailable</c> (503 with Retry-After, in the sessions' error shape) and nothing is half-written.
/// </summary>
[Collection(SessionsCollection.Name)]
public sealed class SessionStoreLockTests
{
    [Fact]
    public async Task A_locked_sqlite_store_is_refused_as_unavailable_by_rest_and_hub_and_serves_again_once_released()
    {
        // A one-second busy timeout: the refusal comes after that wait, not after the default 30 s.
        await using var server = await SessionTestServer.StartAsync(null, "--Sessions:SqliteBusyTimeoutSeconds=1");
        try
        {
            var client = server.Server.Client;
            await using var hub = await server.ConnectAsync();
            var session = await hub.CreateAsync(maxTokens: 4);

            await using (var holder = new SqliteConnection($"Data Source={server.Database};Pooling=False"))
            {
                await holder.OpenAsync();
                await using (var begin = holder.CreateCommand())
                {
                    begin.CommandText = "BEGIN EXCLUSIVE;";
                    await begin.ExecuteNonQueryAsync();
                }

                await AssertUnavailableAsync(await client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(Title: "locked")));
                await AssertUnavailableAsync(await client.PostAsJsonAsync($"/api/sessions/{session.Id}/messages", new SendMessageRequest("Once upon a time")));
                await HubTestExtensions.AssertHubErrorAsync(SessionErrorCodes.Unavailable, () => hub.CreateAsync());
                await HubTestExtensions.AssertHubErrorAsync(SessionErrorCodes.Unavailable, () => hub.Send(session.Id, "Once upon a time").CollectAsync());

                await using var rollback = holder.CreateCommand();
                rollback.CommandText = "ROLLBACK;";
                await rollback.ExecuteNonQueryAsync();
            }

            // Nothing was half-written and no generation, permit or slot was left behind: the session is as it was,
            // and its next turn runs to the end.
            var before = await hub.GetAsync(session.Id);
            Assert.Empty(before.Messages);
            Assert.False(before.Info.Generating);
            Assert.Single(await hub.InvokeAsync<SessionInfo[]>("ListSessions"));
            var last = HubTestExtensions.AssertWellFormed(await hub.Send(session.Id, "Once upon a time").CollectAsync());
            Assert.Equal(ChatStreamEvent.DoneType, last.Type);
            Assert.Equal(2, (await hub.WaitIdleAsync(session.Id)).Messages.Count);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            server.DeleteFiles();
        }
    }

    private static async Task AssertUnavailableAsync(HttpResponseMessage response)
    {
        using (response)
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.True(response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var error = body.RootElement.GetProperty("error");
            Assert.Equal(SessionErrorCodes.Unavailable, error.GetProperty("code").GetString());
            Assert.Equal("unavailable_error", error.GetProperty("type").GetString());
            Assert.Contains("locked", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
    }
}
