using System.Runtime.CompilerServices;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Applies the per-key concurrent-generation allowance to the hub methods marked <see cref="RunsModelAttribute"/>:
/// the permit is taken into the invocation's <see cref="CallPermit"/> and released when the method's stream ends,
/// fails or is cancelled, unless the method handed it to a generation that outlives the stream (a session turn).
/// A refusal is a <see cref="HubException"/> "rate_limit_exceeded: ...". The hub's generation methods stream
/// <see cref="ChatStreamEvent"/>s; a marked method that returns anything else holds its permit only while it runs.
/// </summary>
internal sealed class GenerationHubFilter(KeyGenerationLimiter limiter) : IHubFilter
{
    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        if (!limiter.IsEnabled || !invocationContext.HubMethod.IsDefined(typeof(RunsModelAttribute), inherit: true))
        {
            return await next(invocationContext);
        }

        var caller = invocationContext.Context;
        var call = invocationContext.ServiceProvider.GetRequiredService<CallPermit>();
        if (!limiter.TryAcquire(caller.User, caller.GetHttpContext()?.Connection.RemoteIpAddress, call))
        {
            throw KeyGenerationLimiter.HubRefusal();
        }

        object? result;
        try
        {
            result = await next(invocationContext);
        }
        catch
        {
            call.Release();
            throw;
        }

        if (result is not IAsyncEnumerable<ChatStreamEvent> events)
        {
            call.Release();
            return result;
        }

        return HoldPermit(events, call);
    }

    private static async IAsyncEnumerable<ChatStreamEvent> HoldPermit(IAsyncEnumerable<ChatStreamEvent> source, CallPermit call, [EnumeratorCancellation] CancellationToken cancellationToken = default)
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
            call.Release();
        }
    }
}
