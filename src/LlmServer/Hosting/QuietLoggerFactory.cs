namespace LlmServer.Hosting;

/// <summary>
/// A logger factory that drops the entries <paramref name="isQuiet"/> picks (by event and exception) and passes every
/// other one on: for failures the server reports another way, once and without a stack trace.
/// </summary>
/// <param name="ownsInner">Whether disposing this disposes <paramref name="inner"/> (false for the application's shared factory).</param>
internal sealed class QuietLoggerFactory(ILoggerFactory inner, Func<EventId, Exception?, bool> isQuiet, bool ownsInner) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new QuietLogger(inner.CreateLogger(categoryName), isQuiet);

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    public void Dispose()
    {
        if (ownsInner)
        {
            inner.Dispose();
        }
    }

    private sealed class QuietLogger(ILogger inner, Func<EventId, Exception?, bool> isQuiet) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!isQuiet(eventId, exception))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
