using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Tests;

/// <summary>
/// A logger, and a factory of it for an engine's loggers, that completes <see cref="Logged"/> when an event with the
/// given id is logged: a test waits on what the code says it does, not on time.
/// </summary>
internal sealed class EventLogger(int awaitedEventId) : ILogger, ILoggerFactory
{
    /// <summary>The scheduler's loop, as it ends, waits for callers still using the model before it frees it.</summary>
    public const int WaitingForModelUsers = 1107;

    /// <summary>Freeing what the scheduler's loop owned (the model, the disk KV cache) threw as the loop ended.</summary>
    public const int FreeingFailed = 1108;

    private readonly TaskCompletionSource _logged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Logged => _logged.Task;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id == awaitedEventId)
        {
            _logged.TrySetResult();
        }
    }

    public ILogger CreateLogger(string categoryName) => this;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }
}
