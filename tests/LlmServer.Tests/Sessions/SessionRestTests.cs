using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmServer.Sessions;
using LlmServer.Testing;

namespace LlmServer.Tests.Sessions;

[Collection(SessionsCollection.Name)]
public sealed class SessionRestTests : IClassFixture<SessionServerFixture>
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly SessionServerFixture _fixture;
    private readonly HttpClient _client;

    public SessionRestTests(SessionServerFixture fixture)
    {
        _fixture = fixture;
        _client = fixture.Server.Server.Client;
    }

    [Fact]
    public async Task The_rest_mirror_creates_streams_updates_and_deletes()
    {
        using var create = await _client.PostAsJsonAsync(
            "/api/sessions",
            new CreateSessionRequest("REST", null, new SessionSettings(Temperature: 0, MaxTokens: 12)));
        Assert.Equal(HttpStatusCode.Created, create.StatusCode);
        var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(Json))!;
        Assert.Equal($"/api/sessions/{session.Id}", create.Headers.Location!.OriginalString);

        var events = await SendAsync(session.Id, "Once upon a time");
        var done = HubTestExtensions.AssertWellFormed(events);
        Assert.Equal(ChatStreamEvent.DoneType, done.Type);

        var detail = (await _client.GetFromJsonAsync<SessionDetail>($"/api/sessions/{session.Id}", Json))!;
        Assert.Equal(["user", "assistant"], detail.Messages.Select(m => m.Role));
        Assert.Equal(HubTestExtensions.Text(events), detail.Messages[1].Content);

        // Regenerate, edit, then replay the last generation with Last-Event-ID.
        var regenerated = await StreamAsync(HttpMethod.Post, $"/api/sessions/{session.Id}/regenerate", null);
        Assert.Equal(ChatStreamEvent.DoneType, HubTestExtensions.AssertWellFormed(regenerated).Type);
        var edited = await StreamAsync(HttpMethod.Put, $"/api/sessions/{session.Id}/messages/0", new SendMessageRequest("Lily had a cat"));
        Assert.Equal(ChatStreamEvent.DoneType, HubTestExtensions.AssertWellFormed(edited).Type);
        using (var resume = new HttpRequestMessage(HttpMethod.Get, $"/api/sessions/{session.Id}/events"))
        {
            resume.Headers.Add("Last-Event-ID", "1");
            var replayed = await ReadEventsAsync(resume);
            Assert.Equal(edited.Skip(1), replayed);
        }

        using var patch = await _client.PatchAsJsonAsync(
            $"/api/sessions/{session.Id}",
            new UpdateSessionRequest("Renamed", "Be kind.", new SessionSettings(MaxTokens: 4)));
        Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        var patched = (await patch.Content.ReadFromJsonAsync<SessionInfo>(Json))!;
        Assert.Equal(("Renamed", "Be kind.", 4), (patched.Title, patched.SystemPrompt, patched.Settings.MaxTokens));

        var listed = (await _client.GetFromJsonAsync<SessionInfo[]>("/api/sessions", Json))!;
        Assert.Contains(listed, s => s.Id == session.Id && s.MessageCount == 2);

        using var delete = await _client.DeleteAsync($"/api/sessions/{session.Id}");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        await AssertErrorAsync(await _client.GetAsync($"/api/sessions/{session.Id}"), HttpStatusCode.NotFound, "session_not_found");
    }

    [Fact]
    public async Task Streamed_events_leave_out_the_fields_they_do_not_carry()
    {
        using var create = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest("nulls", null, new SessionSettings(MaxTokens: 4)));
        var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(Json))!;

        using var stream = await _client.PostAsJsonAsync($"/api/sessions/{session.Id}/messages", new SendMessageRequest("Once upon a time"));
        var body = await stream.Content.ReadAsStringAsync();
        var data = body.Split('\n').Where(line => line.StartsWith("data: ", StringComparison.Ordinal)).Select(line => JsonElement.Parse(line[6..])).ToList();

        Assert.NotEmpty(data);
        Assert.All(data, e => Assert.All(e.EnumerateObject(), p => Assert.NotEqual(JsonValueKind.Null, p.Value.ValueKind)));
        Assert.Equal("done", data[^1].GetProperty("type").GetString());
        Assert.False(data[^1].TryGetProperty("code", out _));
    }

    /// <summary>
    /// Length limits count characters as Unicode scalar values (README, "Sessions"): an emoji is one character,
    /// not the two UTF-16 code units it takes.
    /// </summary>
    [Fact]
    public async Task A_title_of_emoji_is_limited_by_characters_not_utf16_code_units()
    {
        var atTheLimit = string.Concat(Enumerable.Repeat("\U0001F600", 200));
        using var accepted = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(atTheLimit));
        Assert.Equal(HttpStatusCode.Created, accepted.StatusCode);
        Assert.Equal(atTheLimit, (await accepted.Content.ReadFromJsonAsync<SessionInfo>(Json))!.Title);

        using var refused = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(atTheLimit + "\U0001F600"));
        var message = await ErrorMessageAsync(refused, HttpStatusCode.BadRequest, "invalid_argument");
        Assert.Contains("title is 201 characters; the limit is 200", message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Session timestamps are UTC to the millisecond (the stores' precision) with exactly three fractional digits:
    /// what a create or a rename answers is what a later read of the store answers.
    /// </summary>
    [Fact]
    public async Task Timestamps_are_utc_milliseconds_and_read_back_exactly_as_first_answered()
    {
        using var create = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest("times"));
        var created = JsonDocument.Parse(await create.Content.ReadAsStringAsync()).RootElement;
        var id = created.GetProperty("id").GetString()!;
        using var patch = await _client.PatchAsJsonAsync($"/api/sessions/{id}", new UpdateSessionRequest("times, renamed"));
        var renamed = JsonDocument.Parse(await patch.Content.ReadAsStringAsync()).RootElement;
        var read = JsonDocument.Parse(await _client.GetStringAsync(new Uri($"/api/sessions/{id}", UriKind.Relative))).RootElement.GetProperty("info");

        foreach (var time in new[] { created.GetProperty("createdAt"), created.GetProperty("updatedAt"), renamed.GetProperty("updatedAt"), read.GetProperty("createdAt") })
        {
            Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", time.GetString());
        }

        Assert.Equal(created.GetProperty("createdAt").GetString(), read.GetProperty("createdAt").GetString());
        Assert.Equal(renamed.GetProperty("updatedAt").GetString(), read.GetProperty("updatedAt").GetString());
    }

    [Fact]
    public async Task Deleting_a_session_while_its_turns_are_being_refused_deletes_it()
    {
        // Each refused turn registers, then abandons, a run; a delete that finds one must not wait on it forever.
        var tooLong = new SendMessageRequest(string.Concat(Enumerable.Repeat("word ", 6000)));
        for (var round = 0; round < 3; round++)
        {
            using var create = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest("race"));
            var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(Json))!;
            var refused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            async Task SendUntilGoneAsync()
            {
                while (true)
                {
                    using var response = await _client.PostAsJsonAsync($"/api/sessions/{session.Id}/messages", tooLong);
                    if (response.StatusCode == HttpStatusCode.NotFound)
                    {
                        return;
                    }

                    Assert.Contains(response.StatusCode, new[] { HttpStatusCode.BadRequest, HttpStatusCode.Conflict });
                    refused.TrySetResult();
                }
            }

            var senders = Enumerable.Range(0, 3).Select(_ => Task.Run(SendUntilGoneAsync)).ToArray();
            await refused.Task;
            using var delete = await _client.DeleteAsync($"/api/sessions/{session.Id}");
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
            await Task.WhenAll(senders);
            await AssertErrorAsync(await _client.GetAsync($"/api/sessions/{session.Id}"), HttpStatusCode.NotFound, "session_not_found");
        }
    }

    [Fact]
    public async Task Rest_errors_have_the_api_error_shape_and_status()
    {
        const string missing = "/api/sessions/0123456789abcdef0123456789abcdef";
        await AssertErrorAsync(await _client.GetAsync(missing), HttpStatusCode.NotFound, "session_not_found");
        await AssertErrorAsync(await _client.DeleteAsync(missing), HttpStatusCode.NotFound, "session_not_found");
        await AssertErrorAsync(await _client.PostAsJsonAsync($"{missing}/messages", new SendMessageRequest("hi")), HttpStatusCode.NotFound, "session_not_found");
        await AssertErrorAsync(
            await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(Settings: new SessionSettings(Temperature: -1))),
            HttpStatusCode.BadRequest,
            "invalid_argument",
            "settings");
        using var badJson = new StringContent("{not json", System.Text.Encoding.UTF8, "application/json");
        await AssertErrorAsync(await _client.PostAsync("/api/sessions", badJson), HttpStatusCode.BadRequest, "invalid_argument", "body");

        using var create = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(Settings: new SessionSettings(Temperature: 0, MaxTokens: 400)));
        var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(Json))!;
        await AssertErrorAsync(await _client.PostAsJsonAsync($"/api/sessions/{session.Id}/messages", new SendMessageRequest("")), HttpStatusCode.BadRequest, "invalid_argument", "text");
        await AssertErrorAsync(await _client.GetAsync($"/api/sessions/{session.Id}/events?afterSeq=x"), HttpStatusCode.BadRequest, "invalid_argument", "afterSeq");

        // While one generation streams, a second send is refused with 409 busy. The decode gate holds the turn past
        // its first tokens until its stop has reached the engine: unheld, stories260K can finish all 400 first.
        _fixture.Gate.CloseAfter(4);
        try
        {
            using var first = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{session.Id}/messages") { Content = JsonContent.Create(new SendMessageRequest("Once upon a time")) };
            using var streaming = await _client.SendAsync(first, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await streaming.Content.ReadAsStreamAsync());
            Assert.StartsWith("id: 1", await StreamGuard.RunAsync(t => reader.ReadLineAsync(t).AsTask(), () => "The first event of the turn"));
            await AssertErrorAsync(await _client.PostAsJsonAsync($"/api/sessions/{session.Id}/messages", new SendMessageRequest("again")), HttpStatusCode.Conflict, "busy");
            using var stop = await _client.PostAsync($"/api/sessions/{session.Id}/stop", null);
            Assert.Equal(HttpStatusCode.NoContent, stop.StatusCode);
            _fixture.Gate.Open();
            var rest = await StreamGuard.RunAsync(reader.ReadToEndAsync, () => "The end of the stopped turn's stream");
            Assert.Contains("\"finishReason\":\"cancelled\"", rest, StringComparison.Ordinal);
        }
        finally
        {
            _fixture.Gate.Open();
        }
    }

    [Fact]
    public async Task A_patch_merges_the_settings_it_names_and_refuses_unknown_ones()
    {
        using var create = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(Settings: new SessionSettings(Temperature: 0, MaxTokens: 12, Seed: 5)));
        var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(Json))!;
        var path = $"/api/sessions/{session.Id}";

        Assert.Equal(new SessionSettings(0.5, null, 12, 5), await PatchAsync("""{"settings":{"temperature":0.5}}"""));
        Assert.Equal(new SessionSettings(0.5, null, null, 5), await PatchAsync("""{"title":"t","settings":{"maxTokens":null}}"""));
        Assert.Equal(new SessionSettings(0.5, null, null, 5), await PatchAsync("""{"settings":null}"""));

        using var unknown = new StringContent("""{"settings":{"bogus":3}}""", System.Text.Encoding.UTF8, "application/json");
        await AssertErrorAsync(await _client.PatchAsync(path, unknown), HttpStatusCode.BadRequest, "invalid_argument", "settings");
        Assert.Equal(new SessionSettings(0.5, null, null, 5), (await _client.GetFromJsonAsync<SessionDetail>(path, Json))!.Info.Settings);

        async Task<SessionSettings> PatchAsync(string body)
        {
            using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
            using var response = await _client.PatchAsync(path, content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (await response.Content.ReadFromJsonAsync<SessionInfo>(Json))!.Settings;
        }
    }

    [Fact]
    public async Task A_bodiless_create_makes_a_default_session()
    {
        // As many clients send a bodiless POST: no Content-Length, no content type.
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(_client.BaseAddress!.Host, _client.BaseAddress.Port);
        await using var stream = tcp.GetStream();
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"POST /api/sessions HTTP/1.1\r\nHost: {_client.BaseAddress.Authority}\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(stream);
        var answer = await StreamGuard.RunAsync(reader.ReadToEndAsync, () => "The end of the answer to a bodiless create");
        Assert.StartsWith("HTTP/1.1 201", answer, StringComparison.Ordinal);
        Assert.Contains($"\"title\":\"{SessionService.DefaultTitle}\"", answer, StringComparison.Ordinal);

        using var text = new StringContent("title=x", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");
        await AssertErrorAsync(await _client.PostAsync("/api/sessions", text), HttpStatusCode.BadRequest, "invalid_argument", "body");
    }

    [Fact]
    public async Task Resuming_after_a_seq_the_generation_never_reached_is_refused()
    {
        using var create = await _client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest(Settings: new SessionSettings(Temperature: 0, MaxTokens: 4)));
        var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(Json))!;
        var events = await SendAsync(session.Id, "Once upon a time");
        var last = HubTestExtensions.AssertWellFormed(events).Seq;

        using (var atEnd = new HttpRequestMessage(HttpMethod.Get, $"/api/sessions/{session.Id}/events?afterSeq={last}"))
        {
            Assert.Empty(await ReadEventsAsync(atEnd));
        }

        await AssertErrorAsync(await _client.GetAsync($"/api/sessions/{session.Id}/events?afterSeq={last + 1}"), HttpStatusCode.BadRequest, "invalid_argument", "afterSeq");
        await AssertErrorAsync(await _client.GetAsync($"/api/sessions/{session.Id}/events?afterSeq=100000"), HttpStatusCode.BadRequest, "invalid_argument", "afterSeq");
    }

    private Task<List<ChatStreamEvent>> SendAsync(string id, string text) =>
        StreamAsync(HttpMethod.Post, $"/api/sessions/{id}/messages", new SendMessageRequest(text));

    private async Task<List<ChatStreamEvent>> StreamAsync(HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        return await ReadEventsAsync(request);
    }

    private async Task<List<ChatStreamEvent>> ReadEventsAsync(HttpRequestMessage request)
    {
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = new List<ChatStreamEvent>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        return await StreamGuard.RunAsync(
            async cancellationToken =>
            {
                string? id = null;
                while (await reader.ReadLineAsync(cancellationToken) is { } line)
                {
                    if (line.StartsWith("id: ", StringComparison.Ordinal))
                    {
                        id = line[4..];
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        var item = JsonSerializer.Deserialize<ChatStreamEvent>(line[6..], Json)!;
                        Assert.Equal(id, item.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture));
                        events.Add(item);
                    }
                }

                return events;
            },
            () => $"The end of the session stream, after {events.Count} events");
    }

    private static async Task<string> ErrorMessageAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        Assert.Equal(status, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = body.RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        return error.GetProperty("message").GetString()!;
    }

    private static async Task AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, string code, string? param = null)
    {
        using (response)
        {
            Assert.Equal(status, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var error = body.RootElement.GetProperty("error");
            Assert.Equal(code, error.GetProperty("code").GetString());
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
            Assert.True(error.TryGetProperty("type", out _));
            if (param is not null)
            {
                Assert.Equal(param, error.GetProperty("param").GetString());
            }
        }
    }
}
