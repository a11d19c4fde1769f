namespace LlmServer.Sessions;

/// <summary>
/// Brings the store up at start (schema, then answers a crash left unfinished marked <c>interrupted</c>) and, on
/// shutdown, stops every running generation and waits until each has stored its answer as cancelled.
/// </summary>
internal sealed partial class SessionsLifecycle : IHostedService
{
    private readonly ISessionStore _store;
    private readonly GenerationRegistry _registry;
    private readonly SessionMetrics _metrics;
    private readonly ILogger<SessionsLifecycle> _logger;

    public SessionsLifecycle(ISessionStore store, GenerationRegistry registry, SessionMetrics metrics, ILogger<SessionsLifecycle> logger)
    {
        _store = store;
        _registry = registry;
        _metrics = metrics;
        _logger = logger;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _store.InitializeAsync(cancellationToken);
        LogStoreReady(_store.Location);
        var interrupted = await _store.InterruptUnfinishedAsync(cancellationToken);
        if (interrupted > 0)
        {
            _metrics.AnswersInterrupted(interrupted);
            LogInterrupted(interrupted);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => _registry.StopAllAsync(cancellationToken);

    [LoggerMessage(EventId = 4107, Level = LogLevel.Information, Message = "Sessions store {Location} ready.")]
    private partial void LogStoreReady(string location);

    [LoggerMessage(EventId = 4108, Level = LogLevel.Warning, Message = "{Count} answer(s) were cut short when the server last stopped; they are kept as interrupted.")]
    private partial void LogInterrupted(int count);
}
