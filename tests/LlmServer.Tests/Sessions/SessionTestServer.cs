using LlmServer.Operations;
using LlmServer.Sessions;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Sessions;

/// <summary>A real server with its own sessions database and disk KV cache in a temporary folder, and helpers for its hub.</summary>
public sealed class SessionTestServer : IAsyncDisposable
{
    private SessionTestServer(TestServer server, string folder, string database)
    {
        Server = server;
        Folder = folder;
        Database = database;
    }

    public TestServer Server { get; }

    public string Folder { get; }

    public string Database { get; }

    /// <summary>Starts a server on <paramref name="database"/> (a new temporary one when null).</summary>
    public static Task<SessionTestServer> StartAsync(string? database = null, params string[] extraArgs) =>
        StartAsync(database, configureServices: null, extraArgs);

    /// <summary>Starts a server on <paramref name="database"/> with test hooks (<paramref name="configureServices"/>).</summary>
    public static async Task<SessionTestServer> StartAsync(string? database, Action<IServiceCollection>? configureServices, params string[] extraArgs)
    {
        var folder = database is null ? Directory.CreateTempSubdirectory("llmserver-sessions-").FullName : Path.GetDirectoryName(database)!;
        database ??= Path.Combine(folder, "sessions.db");
        // The disk KV cache beside the database, so a restart on the same database finds it and no other test shares it.
        var server = await TestServer.StartAsync(
            extraArgs: [$"--Sessions:Database={database}", $"--Sessions:KvCacheDirectory={Path.Combine(folder, "kv-cache")}", .. extraArgs],
            configureServices: configureServices);
        return new SessionTestServer(server, folder, database);
    }

    /// <summary>A started hub connection, with <paramref name="apiKey"/> when given.</summary>
    public async Task<HubConnection> ConnectAsync(string? apiKey = null)
    {
        var connection = new HubConnectionBuilder()
            .WithUrl(new Uri(Server.BaseAddress, "/hubs/chat"), options => options.AccessTokenProvider = () => Task.FromResult(apiKey))
            .Build();
        await connection.StartAsync();
        return connection;
    }

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();

    /// <summary>Deletes the database folder; call once the last server on it is gone.</summary>
    public void DeleteFiles()
    {
        if (Directory.Exists(Folder))
        {
            Directory.Delete(Folder, recursive: true);
        }
    }
}

/// <summary>
/// One server for a test class; its database is removed afterwards. Its decode <see cref="Gate"/> (open unless a test
/// closes it) and <see cref="Cancellations"/> let a test hold a generation until its stop has reached the engine.
/// </summary>
public sealed class SessionServerFixture : IAsyncLifetime
{
    private SessionTestServer? _server;
    private HeldGenerator? _cancellations;

    public SessionTestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    internal DecodeGate Gate { get; } = new();

    internal HeldGenerator Cancellations => _cancellations ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await SessionTestServer.StartAsync(null, services =>
    {
        Gate.Install(services);
        OperationsExtensions.DecorateTextGenerator(services, (_, engine) => _cancellations = new HeldGenerator(engine, holdEndings: false));
    });

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
            _server.DeleteFiles();
        }
    }
}

internal static class HubTestExtensions
{
    public static Task<SessionInfo> CreateAsync(this HubConnection hub, int maxTokens = 16, string? systemPrompt = null, string? title = null) =>
        hub.InvokeAsync<SessionInfo>("CreateSession", new CreateSessionRequest(title, systemPrompt, new SessionSettings(Temperature: 0, MaxTokens: maxTokens)));

    public static Task<SessionDetail> GetAsync(this HubConnection hub, string id) => hub.InvokeAsync<SessionDetail>("GetSession", id);

    /// <summary>Reads the rest of a stream whose current event has been read, under the <see cref="StreamGuard"/>; its last event.</summary>
    public static Task<ChatStreamEvent> LastEventAsync(this IAsyncEnumerator<ChatStreamEvent> stream)
    {
        var last = stream.Current;
        return StreamGuard.RunAsync(
            async cancellationToken =>
            {
                while (await stream.MoveNextAsync().AsTask().WaitAsync(cancellationToken))
                {
                    last = stream.Current;
                }

                return last;
            },
            () => $"The end of the hub stream after event {last.Seq} ({last.Type})");
    }

    /// <summary>Reads a whole stream, under the <see cref="StreamGuard"/>.</summary>
    public static async Task<List<ChatStreamEvent>> CollectAsync(this IAsyncEnumerable<ChatStreamEvent> stream)
    {
        var events = new List<ChatStreamEvent>();
        return await StreamGuard.RunAsync(
            async cancellationToken =>
            {
                await foreach (var item in stream.WithCancellation(cancellationToken))
                {
                    events.Add(item);
                }

                return events;
            },
            () => $"The end of the hub stream, after {events.Count} events (the last: {(events.Count == 0 ? "none" : $"{events[^1].Seq} ({events[^1].Type})")})");
    }

    /// <summary>
    /// Reads a stream to its end under the <see cref="StreamGuard"/>, each event handed to <paramref name="onEvent"/>
    /// as it comes (which may act on the server meanwhile, and waits on the guard's token).
    /// </summary>
    public static async Task ReadEachAsync<T>(this IAsyncEnumerable<T> stream, Func<T, CancellationToken, Task> onEvent)
    {
        var read = 0;
        await StreamGuard.RunAsync(
            async cancellationToken =>
            {
                await foreach (var item in stream.WithCancellation(cancellationToken))
                {
                    read++;
                    await onEvent(item, cancellationToken);
                }

                return read;
            },
            () => $"The end of the hub stream, after {read} events");
    }

    /// <inheritdoc cref="ReadEachAsync{T}(IAsyncEnumerable{T}, Func{T, CancellationToken, Task})"/>
    public static Task ReadEachAsync<T>(this IAsyncEnumerable<T> stream, Action<T> onEvent) =>
        stream.ReadEachAsync((item, _) =>
        {
            onEvent(item);
            return Task.CompletedTask;
        });

    public static IAsyncEnumerable<ChatStreamEvent> Send(this HubConnection hub, string id, string text, CancellationToken cancellationToken = default) =>
        hub.StreamAsync<ChatStreamEvent>("SendMessage", id, text, cancellationToken);

    /// <summary>Waits until the session has no running generation (polling; no timing is asserted).</summary>
    public static async Task<SessionDetail> WaitIdleAsync(this HubConnection hub, string id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var detail = await hub.GetAsync(id);
            if (!detail.Info.Generating || DateTime.UtcNow > deadline)
            {
                return detail;
            }

            // The hub pushes nothing when a session's generation is saved; its detail is the only sign, so it is polled.
            await Task.Delay(20);
        }
    }

    /// <summary>Checks a complete stream: seq 1, 2, ... without gaps, deltas (of reasoning or text), then exactly one final done or error.</summary>
    public static ChatStreamEvent AssertWellFormed(IReadOnlyList<ChatStreamEvent> events, long firstSeq = 1)
    {
        Assert.NotEmpty(events);
        for (var i = 0; i < events.Count; i++)
        {
            Assert.Equal(firstSeq + i, events[i].Seq);
        }

        Assert.All(events.Take(events.Count - 1), e => Assert.Contains(e.Type, new[] { ChatStreamEvent.DeltaType, ChatStreamEvent.ReasoningType }));
        var last = events[^1];
        Assert.Contains(last.Type, new[] { ChatStreamEvent.DoneType, ChatStreamEvent.ErrorType });
        return last;
    }

    public static string Text(IEnumerable<ChatStreamEvent> events) =>
        string.Concat(events.Where(e => e.Type == ChatStreamEvent.DeltaType).Select(e => e.Text));

    /// <summary>The hub error's stable code: the server's message is "code: text".</summary>
    public static async Task AssertHubErrorAsync(string code, Func<Task> action)
    {
        var error = await Assert.ThrowsAsync<HubException>(action);
        Assert.Contains($"HubException: {code}: ", error.Message, StringComparison.Ordinal);
    }
}
