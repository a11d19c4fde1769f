using System.Runtime.CompilerServices;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Operations.Lifecycle;

/// <summary>
/// Counts each hub invocation, a stream until it ends, as work the drain waits for (<see cref="GracefulShutdown.TrackWork"/>):
/// the host closes hub connections when it stops, so it must not stop while a stream still delivers its answer.
/// </summary>
internal sealed class DrainHubFilter(GracefulShutdown shutdown) : IHubFilter
{
    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        var work = shutdown.TrackWork();
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

        if (result is IAsyncEnumerable<ChatStreamEvent> events)
        {
            return CountUntilEnd(events, work);
        }

        work.Dispose();
        return result;
    }

    private static async IAsyncEnumerable<ChatStreamEvent> CountUntilEnd(IAsyncEnumerable<ChatStreamEvent> source, GracefulShutdown.WorkHandle work, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using (work)
        {
            await foreach (var item in source.WithCancellation(cancellationToken))
            {
                yield return item;
            }
        }
    }
}
