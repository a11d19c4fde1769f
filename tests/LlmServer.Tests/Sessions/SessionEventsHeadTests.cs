using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmServer.Sessions;
using LlmServer.Tests.Infrastructure;

namespace LlmServer.Tests.Sessions;

[Collection(SessionsCollection.Name)]
public sealed class SessionEventsHeadTests(SessionServerFixture fixture) : IClassFixture<SessionServerFixture>
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task A_head_of_a_running_turns_events_is_answered_with_the_streams_headers_and_ends()
    {
        var client = fixture.Server.Server.Client;
        using var create = await client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(Settings: new SessionSettings(Temperature: 0, MaxTokens: 400)));
        var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(Json))!;

        // The turn is held mid-way, so a HEAD that followed its events would not end until the stop below.
        fixture.Gate.CloseAfter(4);
        try
        {
            using var send = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{session.Id}/messages") { Content = JsonContent.Create(new SendMessageRequest("Once upon a time")) };
            using var sending = await client.SendAsync(send, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, sending.StatusCode);
            await fixture.Gate.Blocked;

            using var hang = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var (headers, rest) = await RawHttp.HeadThenGetAsync(client.BaseAddress!, $"/api/sessions/{session.Id}/events", "/health/live", hang.Token);

            Assert.StartsWith("HTTP/1.1 200", headers, StringComparison.Ordinal);
            Assert.Contains("Content-Type: text/event-stream", headers, StringComparison.OrdinalIgnoreCase);
            Assert.StartsWith("HTTP/1.1 200", rest, StringComparison.Ordinal);

            using var stop = await client.PostAsync($"/api/sessions/{session.Id}/stop", null);
            Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
        }
        finally
        {
            fixture.Gate.Open();
        }
    }
}
