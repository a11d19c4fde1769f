using System.Collections;
using System.Text.RegularExpressions;

namespace LlmServer.Router.Hosting;

/// <summary>
/// Keeps API keys out of the router's logs: browsers' SignalR clients send the key in the query string
/// (<c>access_token=</c>, which WebSockets and server-sent events leave no other place for), and ASP.NET Core's
/// request lines and YARP's proxying lines log URLs. Every logging provider is wrapped so a message or value naming
/// such a URL has the key replaced with <c>[redacted]</c>.
/// </summary>
internal static partial class LogRedaction
{
    public const string Redacted = "[redacted]";

    /// <summary>Wraps the logging providers registered so far (call it last, once every provider is added).</summary>
    public static void WrapProviders(IServiceCollection services)
    {
        for (var i = 0; i < services.Count; i++)
        {
            var descriptor = services[i];
            if (descriptor.ServiceType == typeof(ILoggerProvider) && !descriptor.IsKeyedService)
            {
                services[i] = ServiceDescriptor.Singleton<ILoggerProvider>(sp => new RedactingLoggerProvider(Create(sp, descriptor)));
            }
        }
    }

    /// <summary><paramref name="text"/> with every <c>access_token</c> query value replaced.</summary>
    public static string Redact(string text) =>
        text.Contains("access_token=", StringComparison.OrdinalIgnoreCase) ? AccessToken().Replace(text, Redacted) : text;

    private static ILoggerProvider Create(IServiceProvider services, ServiceDescriptor descriptor) =>
        (ILoggerProvider)(descriptor.ImplementationInstance
            ?? descriptor.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, descriptor.ImplementationType!));

    [GeneratedRegex("(?<=[?&]access_token=)[^&#\\s\"']*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex AccessToken();

    private sealed class RedactingLoggerProvider(ILoggerProvider inner) : ILoggerProvider, ISupportExternalScope
    {
        public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName));

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => (inner as ISupportExternalScope)?.SetScopeProvider(scopeProvider);

        public void Dispose() => inner.Dispose();
    }

    private sealed class RedactingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel))
            {
                return;
            }

            var message = formatter(state, exception);
            var redacted = Redact(message);
            if (ReferenceEquals(redacted, message))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                return;
            }

            inner.Log(logLevel, eventId, new RedactedState(redacted, state as IReadOnlyList<KeyValuePair<string, object?>>), exception, static (s, _) => s.Message);
        }
    }

    /// <summary>A log entry's message and values with the keys taken out (values as text where they named one).</summary>
    private sealed class RedactedState(string message, IReadOnlyList<KeyValuePair<string, object?>>? values) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        private readonly KeyValuePair<string, object?>[] _values = values is null ? [] : [.. values.Select(RedactValue)];

        public string Message => message;

        public int Count => _values.Length;

        public KeyValuePair<string, object?> this[int index] => _values[index];

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)_values).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString() => message;

        private static KeyValuePair<string, object?> RedactValue(KeyValuePair<string, object?> value) =>
            value.Value is string or Uri or PathString or QueryString && value.Value.ToString() is { } text && Redact(text) is var redacted && !ReferenceEquals(redacted, text)
                ? new(value.Key, redacted)
                : value;
    }
}
