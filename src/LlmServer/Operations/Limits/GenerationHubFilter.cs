using System.Reflection;
using System.Runtime.CompilerServices;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Applies the per-key concurrent-generation allowance to the hub methods that start a generation
/// (<c>Limits:HubGenerationMethods</c>): the permit is held while the method's stream is being read and released
/// when it ends, fails or is cancelled. A refusal is a <see cref="HubException"/> "rate_limit_exceeded: ...".
/// </summary>
internal sealed class GenerationHubFilter(KeyGenerationLimiter limiter, IOptions<LimitsOptions> options) : IHubFilter
{
    private static readonly MethodInfo HoldGeneric = typeof(GenerationHubFilter).GetMethod(nameof(HoldLease), BindingFlags.NonPublic | BindingFlags.Static)!;

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

        var element = result?.GetType().GetInterfaces()
            .FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IAsyncEnumerable<>))?.GetGenericArguments()[0];
        if (element is null)
        {
            lease.Dispose();
            return result;
        }

        return HoldGeneric.MakeGenericMethod(element).Invoke(null, [result, lease, CancellationToken.None]);
    }

    private static async IAsyncEnumerable<T> HoldLease<T>(IAsyncEnumerable<T> source, RateLimitLease lease, [EnumeratorCancellation] CancellationToken cancellationToken = default)
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
