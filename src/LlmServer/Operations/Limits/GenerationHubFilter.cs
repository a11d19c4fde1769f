using System.Runtime.CompilerServices;
using System.Threading.RateLimiting;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Applies the per-key concurrent-generation allowance to the hub methods that start a generation
/// (<c>Limits:HubGenerationMethods</c>): the permit is held while the method's stream is being read and released
/// when it ends, fails or is cancelled. A refusal is a <see cref="HubException"/> "rate_limit_exceeded: ...".
/// The hub's generation methods stream <see cref="ChatStreamEvent"/>s; a listed method that returns anything else
/// holds its permit only while it runs.
/// </summary>
internal sealed class GenerationHubFilter(KeyGenerationLimiter limiter, IOptions<LimitsOptions> options) : IHubFilter
{
    private readonly HashSet<string> _methods = new(options.Value.HubGenerationMethods ?? [.. LimitsOptions.DefaultHubGenerationMethods], StringComparer.Ordinal);

    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        if (!limiter.IsEnabled || !_methods.Contains(invocationContext.HubMethodName))
        {
            return await next(invocationContext);
        }

        var caller = invocationContext.Context;
        var lease = limiter.Limiter.AttemptAcquire(KeyGenerationLimiter.PartitionKey(caller.User, caller.GetHttpContext()?.Connection.RemoteIpAddress));
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            throw new HubException("rate_limit_exceeded: Too many concurrent generations for this API key. Wait for one to finish.");
        }

        object? result;
        try
        {
            result = await next(invocationContext);
        }
        catch
        {
            lease.Dispose();
            throw;
        }

        if (result is not IAsyncEnumerable<ChatStreamEvent> events)
        {
            lease.Dispose();
            return result;
        }

        return HoldLease(events, lease);
    }

    private static async IAsyncEnumerable<ChatStreamEvent> HoldLease(IAsyncEnumerable<ChatStreamEvent> source, RateLimitLease lease, [EnumeratorCancellation] CancellationToken cancellationToken = default)
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
            lease.Dispose();
        }
    }
}
