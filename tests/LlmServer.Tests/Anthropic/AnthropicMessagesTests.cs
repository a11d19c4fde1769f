using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Anthropic;

/// <summary>The Anthropic Messages API over raw HTTP: the exact shapes and event sequence Anthropic's clients read.</summary>
public sealed class AnthropicMessagesTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private const string Path = "/v1/messages";

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task Message_has_anthropic_shape_stop_reason_and_usage()
    {
        var (status, body, response) = await PostAsync(_client, Path, """
            {"model":"stories260K","max_tokens":8,"temperature":0,
             "system":[{"type":"text","text":"You tell stories."}],
             "messages":[{"role":"user","content":[{"type":"text","text":"Once upon a time"}]}]}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        AssertJsonContentType(response);
        Assert.StartsWith("msg_", body.GetProperty("id").GetString());
        Assert.Equal("message", body.GetProperty("type").GetString());
        Assert.Equal("assistant", body.GetProperty("role").GetString());
        Assert.Equal("stories260K", body.GetProperty("model").GetString());
        var content = Assert.Single(body.GetProperty("content").EnumerateArray());
        Assert.Equal("text", content.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(content.GetProperty("text").GetString()));
        Assert.Equal("max_tokens", body.GetProperty("stop_reason").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("stop_sequence").ValueKind);
        var usage = body.GetProperty("usage");
        Assert.Equal(8, usage.GetProperty("output_tokens").GetInt32());
        Assert.True(usage.GetProperty("input_tokens").GetInt32() + usage.GetProperty("cache_read_input_tokens").GetInt32() > 0);
        Assert.Equal(0, usage.GetProperty("cache_creation_input_tokens").GetInt32());
    }

    [Fact]
    public async Task Stop_sequence_is_reported_and_not_emitted()
    {
        var (status, body, _) = await PostAsync(_client, Path, """
            {"model":"stories260K","max_tokens":200,"temperature":0,"stop_sequences":["."],
             "messages":[{"role":"user","content":"Once upon a time"}]}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("stop_sequence", body.GetProperty("stop_reason").GetString());
        Assert.Equal(".", body.GetProperty("stop_sequence").GetString());
        Assert.DoesNotContain(".", body.GetProperty("content")[0].GetProperty("text").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_sends_anthropic_event_sequence()
    {
        using var response = await PostStreamAsync(_client, Path, """
            {"model":"stories260K","max_tokens":8,"temperature":0,"stream":true,
             "messages":[{"role":"user","content":"Once upon a time"}]}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await NamedSse.ReadAllAsync(response);

        // Every event's name is its data's type.
        Assert.All(events, e => Assert.Equal(e.Name, e.Data.GetProperty("type").GetString()));
        var names = events.Select(e => e.Name).ToList();
        Assert.Equal(["message_start", "content_block_start", "ping"], names[..3]);
        Assert.Equal(["content_block_stop", "message_delta", "message_stop"], names[^3..]);
        Assert.All(names[3..^3], name => Assert.Equal("content_block_delta", name));
        Assert.True(names.Count > 6, "at least one text delta");

        var start = events[0].Data.GetProperty("message");
        Assert.StartsWith("msg_", start.GetProperty("id").GetString());
        Assert.Equal("assistant", start.GetProperty("role").GetString());
        Assert.Empty(start.GetProperty("content").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, start.GetProperty("stop_reason").ValueKind);
        Assert.True(start.GetProperty("usage").GetProperty("input_tokens").GetInt32() > 0);

        var block = events[1].Data;
        Assert.Equal(0, block.GetProperty("index").GetInt32());
        Assert.Equal("text", block.GetProperty("content_block").GetProperty("type").GetString());
        Assert.Equal(string.Empty, block.GetProperty("content_block").GetProperty("text").GetString());

        var text = new StringBuilder();
        foreach (var delta in events[3..^3])
        {
            Assert.Equal(0, delta.Data.GetProperty("index").GetInt32());
            Assert.Equal("text_delta", delta.Data.GetProperty("delta").GetProperty("type").GetString());
            text.Append(delta.Data.GetProperty("delta").GetProperty("text").GetString());
        }

        Assert.False(string.IsNullOrEmpty(text.ToString()));
        Assert.Equal(0, events[^3].Data.GetProperty("index").GetInt32());
        var messageDelta = events[^2].Data;
        Assert.Equal("max_tokens", messageDelta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(JsonValueKind.Null, messageDelta.GetProperty("delta").GetProperty("stop_sequence").ValueKind);
        Assert.Equal(8, messageDelta.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    /// <summary>
    /// Anthropic's stream states the prompt's usage in <c>message_start</c> and the cumulative usage in
    /// <c>message_delta</c> (docs: "Streaming Messages", and the SDKs' <c>MessageDeltaUsage</c>: "the cumulative
    /// number of input tokens", "... read from the cache"); the input and cache figures of the two agree.
    /// </summary>
    [Fact]
    public async Task Streamed_message_start_states_the_final_input_and_cache_figures_of_a_warm_prefix()
    {
        const string Request = """
            {"model":"stories260K","max_tokens":4,"temperature":0,STREAM
             "messages":[{"role":"user","content":"Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree and ran to get it."}]}
            """;
        var (status, _, _) = await PostAsync(_client, Path, Request.Replace("STREAM", string.Empty, StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, status);

        using var response = await PostStreamAsync(_client, Path, Request.Replace("STREAM", "\"stream\":true,", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await NamedSse.ReadAllAsync(response);
        Assert.Equal("message_start", events[0].Name);
        Assert.Equal("message_delta", events[^2].Name);
        var start = events[0].Data.GetProperty("message").GetProperty("usage");
        var final = events[^2].Data.GetProperty("usage");
        Assert.True(final.GetProperty("cache_read_input_tokens").GetInt32() > 0, $"The second request should reuse the first one's prefix: {final}");
        foreach (var figure in new[] { "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens" })
        {
            Assert.Equal(final.GetProperty(figure).GetInt32(), start.GetProperty(figure).GetInt32());
        }
    }

    [Fact]
    public async Task Count_tokens_counts_the_rendered_prompt()
    {
        var (status, body, _) = await PostAsync(_client, "/v1/messages/count_tokens", """
            {"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}]}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var counted = body.GetProperty("input_tokens").GetInt32();

        var (_, message, _) = await PostAsync(_client, Path, """
            {"model":"stories260K","max_tokens":1,"messages":[{"role":"user","content":"Once upon a time"}]}
            """);
        var usage = message.GetProperty("usage");
        Assert.Equal(counted, usage.GetProperty("input_tokens").GetInt32() + usage.GetProperty("cache_read_input_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""{"model":"stories260K","messages":[{"role":"user","content":"Hi"}]}""", "max_tokens")]
    [InlineData("""{"max_tokens":4,"messages":[]}""", "messages")]
    [InlineData("""{"max_tokens":4,"messages":[{"role":"system","content":"Hi"}]}""", "system")]
    [InlineData("""{"max_tokens":4,"temperature":1.5,"messages":[{"role":"user","content":"Hi"}]}""", "temperature")]
    [InlineData("""{"max_tokens":4,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}""", "image")]
    [InlineData("""{"max_tokens":4,"messages":[{"role":"user","content":"Hi"}""", "parse")]
    public async Task Bad_request_is_invalid_request_error_in_anthropic_shape(string json, string mentioned)
    {
        var (status, body, response) = await PostAsync(_client, Path, json);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertJsonContentType(response);
        AssertAnthropicError(body, "invalid_request_error");
        Assert.Contains(mentioned, body.GetProperty("error").GetProperty("message").GetString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Unknown_model_and_route_are_not_found_errors()
    {
        var (status, body, _) = await PostAsync(_client, Path, """{"model":"claude-sonnet-4-5","max_tokens":4,"messages":[{"role":"user","content":"Hi"}]}""");
        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertAnthropicError(body, "not_found_error");

        (status, body, _) = await PostAsync(_client, "/v1/messages/batches", "{}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertAnthropicError(body, "not_found_error");
    }

    [Fact]
    public async Task Api_key_is_accepted_as_x_api_key_and_refusals_use_anthropic_shape()
    {
        const string Key = "anthropic-test-key-0123456789";
        await using var server = await TestServer.StartAsync(extraArgs: [$"--Auth:ApiKeys:0={Key}"]);
        const string Body = """{"max_tokens":2,"messages":[{"role":"user","content":"Hi"}]}""";

        using var missing = await server.Client.PostAsync(Path, Json(Body));
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        AssertAnthropicError(JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement, "authentication_error");

        using var withHeader = new HttpRequestMessage(HttpMethod.Post, Path) { Content = Json(Body) };
        withHeader.Headers.Add("x-api-key", Key);
        withHeader.Headers.Add("anthropic-version", "2023-06-01");
        using var accepted = await server.Client.SendAsync(withHeader);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);

        using var wrong = new HttpRequestMessage(HttpMethod.Post, Path) { Content = Json(Body) };
        wrong.Headers.Add("x-api-key", "not-the-key-0123456789");
        using var refused = await server.Client.SendAsync(wrong);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);

        using var bearer = new HttpRequestMessage(HttpMethod.Post, Path) { Content = Json(Body) };
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        using var viaBearer = await server.Client.SendAsync(bearer);
        Assert.Equal(HttpStatusCode.OK, viaBearer.StatusCode);
    }

    [Fact]
    public async Task Body_and_rate_limits_answer_in_anthropic_shape()
    {
        const string Key = "anthropic-test-key-0123456789";
        await using var server = await TestServer.StartAsync(extraArgs: [$"--Auth:ApiKeys:0={Key}", "--Limits:RequestsPerMinute=2", "--Server:MaxRequestBodyBytes=2048"]);

        async Task<HttpResponseMessage> SendAsync(string body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, Path) { Content = Json(body) };
            request.Headers.Add("x-api-key", Key);
            return await server.Client.SendAsync(request);
        }

        using (var tooLarge = await SendAsync($$"""{"max_tokens":2,"messages":[{"role":"user","content":"{{new string('a', 4096)}}"}]}"""))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
            AssertAnthropicError(JsonDocument.Parse(await tooLarge.Content.ReadAsStringAsync()).RootElement, "request_too_large");
        }

        // Two requests a minute (the refused one may have counted): the third at the latest is limited.
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 3 && limited is null; i++)
        {
            var response = await SendAsync("""{"max_tokens":2,"messages":[{"role":"user","content":"Hi"}]}""");
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
                continue;
            }

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            response.Dispose();
        }

        Assert.NotNull(limited);
        using var refused = limited;
        Assert.NotNull(refused.Headers.RetryAfter?.Delta);
        AssertAnthropicError(JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement, "rate_limit_error");
    }

    [Fact]
    public async Task Full_queue_is_overloaded_error_529_with_retry_after()
    {
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(extraArgs: ["--Scheduler:Slots=1", "--Scheduler:ContextSize=1024", "--Scheduler:MaxQueue=1"], configureServices: gate.Install);
        using var cancel = new CancellationTokenSource();
        const string Long = """{"max_tokens":600,"temperature":0,"stream":true,"messages":[{"role":"user","content":"Once upon a time"}]}""";

        // The gate holds the slot's generation past its first tokens until the refusal is seen: unheld, stories260K
        // can end its story (or write all 600 tokens) before the third request arrives.
        gate.CloseAfter(4);
        try
        {
            // The slot: running once its first text delta arrives. The queue place: taken once the 200 arrives (the
            // headers go out when the request is queued; message_start waits for the slot, to state the cached prefix).
            using var running = await PostStreamAsync(server.Client, Path, Long, cancel.Token);
            await using var runningEvents = NamedSse.ReadAsync(running, cancel.Token).GetAsyncEnumerator(cancel.Token);
            while (await runningEvents.MoveNextAsync() && runningEvents.Current.Name != "content_block_delta")
            {
            }

            using var queued = await PostStreamAsync(server.Client, Path, Long, cancel.Token);
            Assert.Equal(HttpStatusCode.OK, queued.StatusCode);

            var (status, body, response) = await PostAsync(server.Client, Path, """{"max_tokens":2,"messages":[{"role":"user","content":"Hi"}]}""");
            Assert.Equal(529, (int)status);
            AssertAnthropicError(body, "overloaded_error");
            Assert.True(response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
            await cancel.CancelAsync();
        }
        finally
        {
            gate.Open();
        }
    }

    private static void AssertAnthropicError(JsonElement body, string expectedType)
    {
        Assert.Equal("error", body.GetProperty("type").GetString());
        var error = body.GetProperty("error");
        Assert.Equal(expectedType, error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
    }
}
