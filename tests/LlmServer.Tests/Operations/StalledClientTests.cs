using System.Net;
using System.Net.Sockets;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using LlmServer.Operations.Auth;
using LlmServer.Operations.Lifecycle;
using LlmServer.Operations.Limits;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmServer.Tests.Operations;

/// <summary>
/// A client that posts a big streamed chat completion (four choices with twenty top logprobs per token) over a socket
/// with a tiny receive buffer and never reads: its response stalls in a flush long before the engine is done. Each
/// test waits for events (the first response byte, the key's permit, the server's log line, the call's end).
/// </summary>
public sealed class StalledClientTests
{
    private const string Key = "stalled-client-key-0123456789";
    private const string StalledPath = "/v1/chat/completions";
    private const string StalledCall = "POST " + StalledPath;
    private const string Completion = """{"model":"stories260K","prompt":"Once","max_tokens":2}""";
    private const string Message = """{"model":"stories260K","max_tokens":2,"messages":[{"role":"user","content":"Once"}]}""";
    private const string Big = """{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":400,"ignore_eos":true,"stream":true,"n":4,"logprobs":true,"top_logprobs":20}""";

    [Fact]
    public async Task The_keys_next_request_is_admitted_once_the_stalled_streams_generation_ended_while_that_stream_is_still_unread()
    {
        await using var server = await StartAsync(null, "--Server:StalledClientSeconds=3600");
        var ends = server.Services.GetRequiredService<CallEnds>();
        using var stalled = await StallAsync(server);

        await WaitForFreePermitAsync(server);
        Assert.False(ends.Ended(StalledCall).IsCompleted, "the stalled response ended: the test proves nothing");

        using var next = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", Key, Json("""{"model":"stories260K","prompt":"Once","max_tokens":2}"""));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.False(ends.Ended(StalledCall).IsCompleted);
    }

    [Fact]
    public async Task Beyond_OpenResponsesPerKey_unread_responses_the_keys_next_request_is_refused_until_one_closes()
    {
        await using var server = await StartAsync(null, "--Server:StalledClientSeconds=3600", "--Limits:OpenResponsesPerKey=2");
        var ends = server.Services.GetRequiredService<CallEnds>();
        using var first = await StallAsync(server);
        await WaitForFreePermitAsync(server);
        using var second = await StallAsync(server);
        await WaitForFreePermitAsync(server);
        Assert.False(ends.Ended(StalledCall).IsCompleted, "a stalled response ended: the test proves nothing");

        // The key's generation permit is free, but its two responses are still open: each API refuses in its own shape.
        using (var refused = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", Key, Json(Completion)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
            var error = await AuthTests.ErrorAsync(refused);
            Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
            Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
            Assert.Contains("open responses", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        using (var refused = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/messages", Key, Json(Message)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            var body = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("error", body.GetProperty("type").GetString());
            Assert.Equal("rate_limit_error", body.GetProperty("error").GetProperty("type").GetString());
        }

        // Closing one stalled client ends its response, and with it the key may open another.
        first.Dispose();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await ends.Ended(StalledCall).WaitAsync(deadline.Token);
        using var next = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", Key, Json(Completion));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task A_stream_whose_client_reads_nothing_for_StalledClientSeconds_is_closed_and_logged_once()
    {
        var log = new LogLines();
        await using var server = await StartAsync(log, "--Server:StalledClientSeconds=1");
        var ends = server.Services.GetRequiredService<CallEnds>();
        using var stalled = await StallAsync(server);

        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await log.WaitForAsync("made no room in its stream", deadline.Token);
        await ends.Ended(StalledCall).WaitAsync(deadline.Token);
        await AssertClosedAsync(stalled, deadline.Token);
        Assert.Single(log.Lines, line => line.Contains("made no room in its stream", StringComparison.Ordinal));

        await WaitForFreePermitAsync(server);
        using var next = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/completions", Key, Json("""{"model":"stories260K","prompt":"Once","max_tokens":2}"""));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task The_drain_cuts_a_client_that_reads_nothing_when_its_time_is_up()
    {
        var log = new LogLines();
        await using var server = await StartAsync(log, "--Server:StalledClientSeconds=3600", "--Server:DrainSeconds=1");
        var ends = server.Services.GetRequiredService<CallEnds>();
        using var stalled = await StallAsync(server);
        await WaitForFreePermitAsync(server);

        // What the first SIGTERM begins; the engine has nothing left to run, only the stalled response is left.
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await server.Services.GetRequiredService<GracefulShutdown>().BeginDrain().WaitAsync(deadline.Token);

        Assert.Contains(log.Lines, line => line.Contains("closing the connections of 1 ", StringComparison.Ordinal));
        Assert.DoesNotContain(log.Lines, line => line.Contains("The drain ends with", StringComparison.Ordinal));
        await ends.Ended(StalledCall).WaitAsync(deadline.Token);
        await AssertClosedAsync(stalled, deadline.Token);
    }

    private static Task<TestServer> StartAsync(LogLines? log, params string[] args) => TestServer.StartAsync(
        extraArgs: [$"--Auth:ApiKeys:0={Key}", "--Limits:ConcurrentGenerationsPerKey=1", .. args],
        configureServices: services =>
        {
            CallEnds.Install(services);
            if (log is not null)
            {
                services.AddSingleton<ILoggerProvider>(log);
            }
        });

    /// <summary>Sends the big request over a socket that never reads; returns once the response has begun (its permit taken).</summary>
    private static async Task<Socket> StallAsync(TestServer server)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 1024 };
        await socket.ConnectAsync(IPAddress.Loopback, server.BaseAddress.Port);
        var body = Encoding.UTF8.GetBytes(Big);
        var head = Encoding.ASCII.GetBytes(
            $"POST {StalledPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {Key}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n");
        await socket.SendAsync(head.Concat(body).ToArray());

        // A peek leaves the byte in the buffer: the client still reads nothing.
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var first = new byte[1];
        Assert.Equal(1, await socket.ReceiveAsync(first, SocketFlags.Peek, deadline.Token));
        return socket;
    }

    /// <summary>Waits for the key's one permit to be free (the limiter's own count is the event).</summary>
    private static async Task WaitForFreePermitAsync(TestServer server)
    {
        Assert.True(server.Services.GetRequiredService<ApiKeyStore>().TryGetKeyId(Key, out var keyId));
        var limiter = server.Services.GetRequiredService<KeyGenerationLimiter>().Limiter;
        var partition = KeyGenerationLimiter.PartitionKey(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ApiKeyAuthentication.KeyIdClaim, keyId)])), null);
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (limiter.GetStatistics(partition)?.CurrentAvailablePermits != 1)
        {
            await Task.Delay(10, deadline.Token);
        }
    }

    /// <summary>Reads what the server sent until the connection ends (closed or reset).</summary>
    private static async Task AssertClosedAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken) > 0)
            {
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            // An aborted connection with data in flight is reset rather than closed.
        }
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>The server's log lines, and a wait for one that contains a fragment.</summary>
    private sealed class LogLines : ILoggerProvider, ILogger
    {
        private readonly Lock _lock = new();
        private readonly List<string> _lines = [];
        private readonly List<(string Fragment, TaskCompletionSource Logged)> _waiters = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lock)
                {
                    return [.. _lines];
                }
            }
        }

        public Task WaitForAsync(string fragment, CancellationToken cancellationToken)
        {
            var logged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_lock)
            {
                if (_lines.Any(line => line.Contains(fragment, StringComparison.Ordinal)))
                {
                    return Task.CompletedTask;
                }

                _waiters.Add((fragment, logged));
            }

            return logged.Task.WaitAsync(cancellationToken);
        }

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = formatter(state, exception);
            lock (_lock)
            {
                _lines.Add(line);
                foreach (var waiter in _waiters.Where(w => line.Contains(w.Fragment, StringComparison.Ordinal)))
                {
                    waiter.Logged.TrySetResult();
                }
            }
        }

        public void Dispose()
        {
        }
    }
}
