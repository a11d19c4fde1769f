using System.Collections.Concurrent;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using static LlmServer.Tests.Sessions.HubTestExtensions;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// A refused hub call (a <see cref="HubException"/> "code: text") is logged once at Information without a stack
/// trace, whether the method or a stream refuses it; an unexpected failure is still logged at Error with its exception.
/// </summary>
[Collection(SessionsCollection.Name)]
public sealed class HubCallLogTests
{
    [Fact]
    public async Task A_refusal_is_logged_once_at_information_without_a_stack_and_a_fault_still_at_error()
    {
        var logs = new CapturedLogs();
        var server = await SessionTestServer.StartAsync(
            null,
            services =>
            {
                services.AddSingleton<ILoggerProvider>(logs);
                services.AddOptions<HubOptions>().Configure(hub => hub.AddFilter(new FaultOn("ListSessions")));
            },
            "--Logging:LogLevel:LlmServer.Sessions.HubCallLog=Information");
        try
        {
            await using (var hub = await server.ConnectAsync())
            {
                await AssertHubErrorAsync(SessionErrorCodes.SessionNotFound, () => hub.GetAsync("missing"));
                await AssertHubErrorAsync(SessionErrorCodes.SessionNotFound, () => hub.Send("missing", "Once upon a time").CollectAsync());
                await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync<SessionInfo[]>("ListSessions"));
            }

            var refusals = logs.Entries.Where(e => e.Exception is HubException || e.Message.Contains(SessionErrorCodes.SessionNotFound, StringComparison.Ordinal)).ToList();
            Assert.Equal(2, refusals.Count);
            Assert.All(refusals, entry =>
            {
                Assert.Equal((LogLevel.Information, typeof(HubCallLog).FullName), (entry.Level, entry.Category));
                Assert.Null(entry.Exception);
            });
            Assert.Contains(refusals, e => e.Message.StartsWith("Hub call GetSession refused: session_not_found: ", StringComparison.Ordinal));
            Assert.Contains(refusals, e => e.Message.StartsWith("Hub call SendMessage refused: session_not_found: ", StringComparison.Ordinal));

            var fault = Assert.Single(logs.Entries, e => e.Exception is InvalidOperationException);
            Assert.Equal(LogLevel.Error, fault.Level);
        }
        finally
        {
            await server.DisposeAsync();
            server.DeleteFiles();
        }
    }

    [Fact]
    public async Task An_internal_error_sent_as_a_hub_error_is_logged_at_error_with_its_cause()
    {
        var logs = new CapturedLogs();
        var server = await SessionTestServer.StartAsync(
            null,
            services =>
            {
                services.AddSingleton<ILoggerProvider>(logs);
                services.AddOptions<HubOptions>().Configure(hub => hub.AddFilter(new InternalErrorOn("ListSessions")));
            });
        try
        {
            await using (var hub = await server.ConnectAsync())
            {
                await AssertHubErrorAsync(SessionErrorCodes.InternalError, () => hub.InvokeAsync<SessionInfo[]>("ListSessions"));
            }

            var failed = Assert.Single(logs.Entries, e => e.Exception is HubException or SessionException);
            Assert.Equal((LogLevel.Error, typeof(HubCallLog).FullName, "Hub call ListSessions failed."), (failed.Level, failed.Category, failed.Message));
            Assert.IsType<SessionException>(failed.Exception);
        }
        finally
        {
            await server.DisposeAsync();
            server.DeleteFiles();
        }
    }

    /// <summary>A hub filter that answers the named method with the hub error of an internal session error.</summary>
    private sealed class InternalErrorOn(string method) : IHubFilter
    {
        public ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next) =>
            invocationContext.HubMethodName == method ? throw SessionErrors.ToHub(new SessionException()) : next(invocationContext);
    }

    /// <summary>A hub filter that fails the named method with an unexpected exception.</summary>
    private sealed class FaultOn(string method) : IHubFilter
    {
        public ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next) =>
            invocationContext.HubMethodName == method ? throw new InvalidOperationException("A test fault.") : next(invocationContext);
    }

    private sealed record Entry(string Category, LogLevel Level, string Message, Exception? Exception);

    /// <summary>Every entry the server logs at the levels its configuration lets through.</summary>
    private sealed class CapturedLogs : ILoggerProvider
    {
        private readonly ConcurrentQueue<Entry> _entries = new();

        public IReadOnlyCollection<Entry> Entries => _entries;

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _entries);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<Entry> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Enqueue(new Entry(category, logLevel, formatter(state, exception), exception));
        }
    }
}
