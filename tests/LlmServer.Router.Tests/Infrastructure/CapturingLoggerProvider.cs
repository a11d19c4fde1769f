using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace LlmServer.Router.Tests.Infrastructure;

/// <summary>Every message and every structured value logged, as text; and every entry's event id.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<EventId> _events = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public IReadOnlyCollection<EventId> Events => _events;

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider capture) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            capture._events.Enqueue(eventId);
            capture._lines.Enqueue(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
            {
                foreach (var value in values)
                {
                    capture._lines.Enqueue(value.Key + "=" + value.Value);
                }
            }
        }
    }
}
