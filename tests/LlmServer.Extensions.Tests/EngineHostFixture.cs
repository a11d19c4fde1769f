using System.Collections.Concurrent;
using System.Diagnostics;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Extensions.AI;
using LlmServer.SemanticKernel;
using LlmServer.Tests.Infrastructure;
using LlmServer.Testing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.SemanticKernel;

namespace LlmServer.Extensions.Tests;

/// <summary>
/// One in-process host for the whole collection: the real engine on stories260K with two slots, the chat client
/// behind logging, OpenTelemetry and a recording middleware, and a Semantic Kernel over the same client. The model's
/// own chat template renders the prompt, or the one a derived fixture names (<see cref="Qwen3EngineHostFixture"/>).
/// </summary>
public class EngineHostFixture : IAsyncLifetime
{
    public const string ActivitySourceName = "LlmServer.Extensions.Tests";

    private readonly ActivityListener _listener;
    private readonly string? _chatTemplateFile;

    public EngineHostFixture()
        : this(chatTemplateFile: null)
    {
    }

    protected EngineHostFixture(string? chatTemplateFile)
    {
        _chatTemplateFile = chatTemplateFile;
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity => Activities.Enqueue(activity),
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IHost Host { get; private set; } = null!;

    public ITextGenerator Generator => Host.Services.GetRequiredService<ITextGenerator>();

    /// <summary>The registered pipeline: logging, OpenTelemetry, recording, then the engine's client.</summary>
    public IChatClient ChatClient => Host.Services.GetRequiredService<IChatClient>();

    public Kernel Kernel => Host.Services.GetRequiredService<Kernel>();

    public CapturingLoggerProvider Logs { get; } = new();

    public ConcurrentQueue<RecordedCall> Calls { get; } = new();

    public ConcurrentQueue<Activity> Activities { get; } = new();

    /// <summary>Holds the engine's decode steps while a test keeps a generation running (open unless a test closes it).</summary>
    internal DecodeGate Gate { get; } = new();

    public async Task InitializeAsync()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Model:Path"] = TestModels.Stories260K,
            ["Model:ChatTemplateFile"] = _chatTemplateFile,
            ["Scheduler:Slots"] = "2",
            ["Model:Threads"] = "1",
            ["Model:BatchThreads"] = "1",
        });
        builder.Logging.AddProvider(Logs).AddFilter("Microsoft.Extensions.AI", LogLevel.Debug);

        builder.Services.AddLlmServerEngine(builder.Configuration);
        Gate.Install(builder.Services);
        builder.Services.AddLlmServerChatClient()
            .UseLogging()
            .UseOpenTelemetry(sourceName: ActivitySourceName)
            .Use(inner => new RecordingChatClient(inner, Calls));
        builder.Services.AddKernel().AddLlmServerChatCompletion();

        Host = builder.Build();
        await Host.StartAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await Generator.WaitUntilReadyAsync(cancellationToken: timeout.Token);
    }

    public async Task DisposeAsync()
    {
        await Host.StopAsync();
        Host.Dispose();
        _listener.Dispose();
    }

    /// <summary>Waits (bounded, never asserted as a time) until the scheduler runs nothing.</summary>
    public Task WaitUntilIdleAsync() => WaitUntilIdleAsync(Host.Services);

    /// <summary>
    /// Waits, at most 60 seconds, for the engine's idle signal: raised once the status it publishes counts the last
    /// request's slot as free (and its session as resident), so the status read afterwards is current.
    /// </summary>
    public static async Task WaitUntilIdleAsync(IServiceProvider services) =>
        Assert.True(await services.GetRequiredService<LlmEngine>().WaitForIdleAsync(TimeSpan.FromSeconds(60)), "the engine did not become idle");
}

[CollectionDefinition(Name)]
public sealed class EngineHostCollection : ICollectionFixture<EngineHostFixture>
{
    public const string Name = "In-process engine host";
}

public sealed record RecordedCall(string Method, IReadOnlyList<ChatMessage> Messages, ChatOptions? Options);

/// <summary>Middleware that records what reaches the engine's client: proves the pipeline wraps it.</summary>
internal sealed class RecordingChatClient(IChatClient inner, ConcurrentQueue<RecordedCall> calls) : DelegatingChatClient(inner)
{
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages.ToList();
        calls.Enqueue(new RecordedCall(nameof(GetResponseAsync), list, options));
        return base.GetResponseAsync(list, options, cancellationToken);
    }

    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages.ToList();
        calls.Enqueue(new RecordedCall(nameof(GetStreamingResponseAsync), list, options));
        return base.GetStreamingResponseAsync(list, options, cancellationToken);
    }
}

public sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(string Category, LogLevel Level, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(categoryName, Entries);

    public void Dispose()
    {
    }

    private sealed class CapturingLogger(string category, ConcurrentQueue<(string, LogLevel, string)> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => entries.Enqueue((category, logLevel, formatter(state, exception)));
    }
}
