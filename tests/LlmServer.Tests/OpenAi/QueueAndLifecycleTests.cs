using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>
/// One slot and one queue place, with a fast keep-alive: a second request waits, a third is refused. Its decode
/// <see cref="Gate"/> (open unless a test closes it) keeps the slot's generation running while a test needs it.
/// </summary>
public sealed class OneSlotServerFixture : IAsyncLifetime
{
    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    internal DecodeGate Gate { get; } = new();

    public static string[] Arguments { get; } =
    [
        "--Scheduler:Slots=1",
        "--Scheduler:ContextSize=1024",
        "--Scheduler:MaxQueue=1",
        "--OpenAi:KeepAliveInterval=00:00:00.020",
    ];

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(extraArgs: Arguments, configureServices: Gate.Install);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Queueing, overload, disconnects and draining, seen through the OpenAI API.</summary>
public sealed class QueueAndLifecycleTests(OneSlotServerFixture fixture) : IClassFixture<OneSlotServerFixture>
{
    private const string LongStream = """
        {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":600,"ignore_eos":true,"temperature":0,"stream":true}
        """;

    // Fewer than the long stream's tokens: past them, a closed gate holds the stream running until the test opens it.
    private const int DecodesBeforeTheGate = 4;

    private readonly TestServer _server = fixture.Server;
    private readonly DecodeGate _gate = fixture.Gate;

    [Fact]
    public async Task Queued_stream_gets_keep_alives_then_its_tokens_and_a_full_queue_gets_429()
    {
        // The gate holds the long generation running (past its first tokens) until the slot and queue are seen full:
        // unheld, stories260K can write all 600 tokens before the third request arrives.
        _gate.CloseAfter(DecodesBeforeTheGate);
        try
        {
            using var cancel = new CancellationTokenSource();
            using var client = NewClient();

            // The one slot: a long generation, known to be running once its first content chunk arrives.
            using var running = await PostStreamAsync(client, ChatPath, LongStream, cancel.Token);
            using var runningReader = new StreamReader(await running.Content.ReadAsStreamAsync(cancel.Token), Encoding.UTF8);
            var runningEvents = ReadEventsAsync(runningReader, cancel.Token).GetAsyncEnumerator(cancel.Token);
            await ReadUntilContentAsync(runningEvents);

            // The one queue place.
            using var queued = await PostStreamAsync(client, ChatPath, """
                {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":3,"stream":true}
                """, cancel.Token);
            Assert.Equal(HttpStatusCode.OK, queued.StatusCode);
            using var queuedReader = new StreamReader(await queued.Content.ReadAsStreamAsync(cancel.Token), Encoding.UTF8);
            var queuedEvents = ReadEventsAsync(queuedReader, cancel.Token).GetAsyncEnumerator(cancel.Token);
            Assert.True(await queuedEvents.MoveNextAsync());
            Assert.Equal("assistant", queuedEvents.Current.Json.GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
            Assert.True(await queuedEvents.MoveNextAsync());
            Assert.True(queuedEvents.Current.IsComment, "a queued stream's next line is a keep-alive comment");
            Assert.Equal(1, _server.Services.GetRequiredService<ITextGenerator>().GetStatus().Waiting);

            // Slot and queue are full.
            var (status, body, response) = await PostAsync(client, ChatPath, """{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}""");
            Assert.Equal(HttpStatusCode.TooManyRequests, status);
            AssertOpenAiError(body, "rate_limit_error", expectedCode: "queue_full");
            Assert.True(response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));

            // Free the slot: the queued request runs to its end.
            _gate.Open();
            await cancel.CancelAsync();
            await runningEvents.DisposeAsync();
            var rest = (await ReadAllEventsAsync(queuedReader)).Items;

            Assert.Equal("[DONE]", rest[^1].Data);
            Assert.Contains(rest, e => !e.IsComment && e.Data != "[DONE]" && e.Json.GetProperty("choices")[0].GetProperty("finish_reason").GetString() == "length");
            await AssertServesNormallyAsync();
        }
        finally
        {
            _gate.Open();
        }
    }

    [Fact]
    public async Task A_prompt_array_larger_than_slots_and_queue_is_a_400_not_a_retryable_429()
    {
        using var client = NewClient();

        // One slot and one queue place hold two prompts at once: three can never be admitted together.
        var (status, body, response) = await PostAsync(client, "/v1/completions", """{"prompt":["Once","Once upon","Once upon a"],"max_tokens":2}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", expectedParam: "prompt");
        Assert.Contains("3 prompts", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Null(response.Headers.RetryAfter);
        var engine = _server.Services.GetRequiredService<ITextGenerator>().GetStatus();
        Assert.Equal(0, engine.Running + engine.Waiting);

        // Two fit: they are served.
        (status, body, _) = await PostAsync(client, "/v1/completions", """{"prompt":["Once","Once upon"],"max_tokens":2}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, body.GetProperty("choices").GetArrayLength());
    }

    /// <summary>
    /// Its own server, whose generations' endings are held back (<see cref="HeldGenerator"/>): the stream cannot end by
    /// itself, so it ends early only if the server cancels it when its client goes away. A decode gate keeps the
    /// engine's generation running until then (CI once saw it finished, Running 0, when the client acted).
    /// </summary>
    [Fact]
    public async Task Client_disconnect_cancels_the_generation_and_frees_its_slot()
    {
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(extraArgs: OneSlotServerFixture.Arguments, configureServices: services =>
        {
            gate.Install(services);
            HeldGenerator.Install(services);
        });
        var generator = server.Services.GetRequiredService<ITextGenerator>();
        var held = (HeldGenerator)generator;
        using var client = NewClient(server);
        using var cancel = new CancellationTokenSource();

        // The gate holds the engine past the stream's first tokens: the generation is running (not finished, its
        // slot taken) when the client goes away, however fast the model writes.
        gate.CloseAfter(DecodesBeforeTheGate);
        try
        {
            var response = await PostStreamAsync(client, ChatPath, LongStream, cancel.Token);
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token), Encoding.UTF8);
            await using (var events = ReadEventsAsync(reader, cancel.Token).GetAsyncEnumerator(cancel.Token))
            {
                await ReadUntilContentAsync(events);
            }

            await gate.Blocked;
            Assert.Equal(1, generator.GetStatus().Running);
            await cancel.CancelAsync();
            reader.Dispose();
            response.Dispose();

            // The server notices the disconnect and cancels the generation (the event); the engine's idle signal then marks the slot freed.
            using var hang = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await held.Cancelled.WaitAsync(hang.Token);
            gate.Open();
            Assert.True(await server.Services.GetRequiredService<LlmEngine>().WaitForIdleAsync(TimeSpan.FromSeconds(60)), "the generation did not end");
            Assert.Equal(0, generator.GetStatus().Running);
            Assert.Equal(0, generator.GetStatus().Waiting);
            held.Release();
            await AssertServesNormallyAsync(server);
        }
        finally
        {
            gate.Open();
        }
    }

    /// <summary>A connection per test that is closed, not drained, when a response is abandoned.</summary>
    private HttpClient NewClient(TestServer? server = null) => new(new SocketsHttpHandler { MaxResponseDrainSize = 0 })
    {
        BaseAddress = (server ?? _server).BaseAddress,
        Timeout = TimeSpan.FromSeconds(60),
    };

    private static Task ReadUntilContentAsync(IAsyncEnumerator<SseItem> events) =>
        StreamGuard.RunAsync(
            async cancellationToken =>
            {
                while (await events.MoveNextAsync().AsTask().WaitAsync(cancellationToken))
                {
                    if (!events.Current.IsComment && events.Current.Json.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var content)
                        && content.GetString()!.Length > 0)
                    {
                        return true;
                    }
                }

                throw new InvalidOperationException("The stream ended before any content.");
            },
            () => "A content chunk of the running stream");

    private async Task AssertServesNormallyAsync(TestServer? server = null)
    {
        var (status, body, _) = await PostAsync((server ?? _server).Client, ChatPath, """{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }
}

/// <summary>A draining server refuses new work with 503 in the error shape.</summary>
public sealed class DrainingTests
{
    [Fact]
    public async Task Requests_while_draining_get_503()
    {
        await using var server = await TestServer.StartAsync();
        await server.Services.GetRequiredService<ITextGenerator>().DrainAsync(TimeSpan.Zero);

        var (status, body, _) = await PostAsync(server.Client, ChatPath, """{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}""");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        AssertOpenAiError(body, "server_error", expectedCode: "unavailable");

        using var streaming = await server.Client.PostAsync(ChatPath, Json("""{"messages":[{"role":"user","content":"Hi"}],"stream":true}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, streaming.StatusCode);
        AssertOpenAiError(JsonDocument.Parse(await streaming.Content.ReadAsStringAsync()).RootElement, "server_error");
    }
}
