using System.Runtime.CompilerServices;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Applies the per-key allowances to the hub methods marked <see cref="RunsModelAttribute"/>: the call opens one of
/// its key's responses, held until the method's stream ends, fails or is cancelled, and takes a generation permit into
/// the invocation's <see cref="CallPermit"/>, released then too unless the method handed it to a generation that
/// outlives the stream (a session turn). A refusal is a <see cref="HubException"/> "rate_limit_exceeded: ...". The
/// hub's generation methods stream <see cref="ChatStreamEvent"/>s; a marked method that returns anything else holds
/// both only while it runs.
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
        var address = caller.GetHttpContext()?.Connection.RemoteIpAddress;
        if (!limiter.TryOpenResponse(caller.User, address, out var response))
        {
            throw KeyGenerationLimiter.HubRefusal(KeyGenerationLimiter.OpenResponsesRefusal);
        }

        var call = invocationContext.ServiceProvider.GetRequiredService<CallPermit>();
        object? result;
        try
        {
            if (!limiter.TryAcquire(caller.User, address, call))
            {
                throw KeyGenerationLimiter.HubRefusal(KeyGenerationLimiter.Refusal);
            }

            result = await next(invocationContext);
        }
        catch
        {
            call.Release();
            response?.Dispose();
            throw;
        }

        if (result is not IAsyncEnumerable<ChatStreamEvent> events)
        {
            call.Release();
            response?.Dispose();
            return result;
        }

        return HoldUntilEnded(events, call, response);
    }

    private static async IAsyncEnumerable<ChatStreamEvent> HoldUntilEnded(IAsyncEnumerable<ChatStreamEvent> source, CallPermit call, IDisposable? response, [EnumeratorCancellation] CancellationToken cancellationToken = default)
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
            response?.Dispose();
        }
    }
}
