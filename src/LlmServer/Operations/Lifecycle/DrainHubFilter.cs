using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Operations.Lifecycle;

/// <summary>
/// Lets hub streams run through the drain and their last events reach the client. SignalR aborts its connections
/// without flushing when the host stops, so the drain must not end while a connection still has bytes to send: each
/// connection's transport request is counted as work (<see cref="DrainingMiddleware"/>), and this filter closes
/// connections itself, the way a finished connection closes (what was written is sent, then the socket closes): at
/// the drain's start those with no stream running, later each one as its last stream ends. Invocations are counted
/// as work while they run, a stream until it ends.
/// </summary>
internal sealed class DrainHubFilter : IHubFilter
{
    private readonly GracefulShutdown _shutdown;
    private readonly ConcurrentDictionary<string, Connection> _connections = new(StringComparer.Ordinal);

    public DrainHubFilter(GracefulShutdown shutdown)
    {
        _shutdown = shutdown;
        shutdown.DrainStarted.Register(CloseIdleConnections);
    }

    public async Task OnConnectedAsync(HubLifetimeContext context, Func<HubLifetimeContext, Task> next)
    {
        var connection = new Connection(context.Context);
        _connections[context.Context.ConnectionId] = connection;
        await next(context);
        if (_shutdown.IsDraining)
        {
            connection.CloseIfIdle();
        }
    }

    public async Task OnDisconnectedAsync(HubLifetimeContext context, Exception? exception, Func<HubLifetimeContext, Exception?, Task> next)
    {
        _connections.TryRemove(context.Context.ConnectionId, out _);
        await next(context, exception);
    }

    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        var work = _shutdown.TrackWork(invocationContext.Context.Abort);
        object? result;
        try
        {
            result = await next(invocationContext);
        }
        catch
        {
            work.Dispose();
            throw;
        }

        if (result is IAsyncEnumerable<ChatStreamEvent> events && _connections.TryGetValue(invocationContext.Context.ConnectionId, out var connection))
        {
            connection.StreamStarted();
            return CountUntilEnd(events, work, connection);
        }

        work.Dispose();
        return result;
    }

    private void CloseIdleConnections()
    {
        foreach (var connection in _connections.Values)
        {
            connection.CloseIfIdle();
        }
    }

    private async IAsyncEnumerable<ChatStreamEvent> CountUntilEnd(
        IAsyncEnumerable<ChatStreamEvent> source, GracefulShutdown.WorkHandle work, Connection connection, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using (work)
        {
            try
            {
                await foreach (var item in source.WithCancellation(cancellationToken))
                {
                    yield return item;
                }
            }
            finally
            {
                connection.StreamEnded(_shutdown.IsDraining);
            }
        }
    }

    /// <summary>A hub connection and the streams it runs.</summary>
    private sealed class Connection(HubCallerContext context)
    {
        private int _streams;

        public void StreamStarted() => Interlocked.Increment(ref _streams);

        public void StreamEnded(bool draining)
        {
            if (Interlocked.Decrement(ref _streams) == 0 && draining)
            {
                context.Abort();
            }
        }

        public void CloseIfIdle()
        {
            if (Volatile.Read(ref _streams) == 0)
            {
                context.Abort();
            }
        }
    }
}
