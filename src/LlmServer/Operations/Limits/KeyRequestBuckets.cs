using System.Net;
using System.Security.Claims;
using System.Threading.RateLimiting;
using LlmServer.Errors;
using LlmServer.Operations.Auth;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// <c>Limits:RequestsPerMinute</c>: one token bucket per key (or, without keys, per address), shared by HTTP requests
/// (the rate limiter's global limiter) and hub invocations (<see cref="RequestRateHubFilter"/>), so a hub connection
/// cannot call more often than the same key could over HTTP.
/// </summary>
internal sealed class KeyRequestBuckets : IDisposable
{
    private readonly int _perMinute;
    private readonly PartitionedRateLimiter<string> _buckets;

    public KeyRequestBuckets(IOptions<LimitsOptions> options)
    {
        _perMinute = options.Value.RequestsPerMinute;
        _buckets = PartitionedRateLimiter.Create<string, string>(key => key.Length == 0 || _perMinute <= 0
            ? RateLimitPartition.GetNoLimiter(key)
            : RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = _perMinute,
                TokensPerPeriod = 1,
                ReplenishmentPeriod = TimeSpan.FromMinutes(1) / _perMinute,
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
    }

    public bool IsEnabled => _perMinute > 0;

    /// <summary>The buckets keyed by request: protected paths by their caller's partition, the rest unlimited.</summary>
    public PartitionedRateLimiter<HttpContext> ForRequests(ProtectedPaths protectedPaths) =>
        _buckets.WithTranslatedKey<HttpContext>(
            context => protectedPaths.Contains(context.Request.Path) ? KeyGenerationLimiter.PartitionKey(context.User, context.Connection.RemoteIpAddress) : string.Empty,
            leaveOpen: true);

    /// <summary>Takes a token for one call of the caller; the lease says whether it was granted and when the next comes.</summary>
    public RateLimitLease Acquire(ClaimsPrincipal? user, IPAddress? remoteAddress) =>
        _buckets.AttemptAcquire(KeyGenerationLimiter.PartitionKey(user, remoteAddress));

    /// <summary>The refusal's delay: when the bucket's next token comes, at least a second.</summary>
    public static int RetryAfterSeconds(RateLimitLease lease) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)) : 1;

    public static string RefusalMessage(int seconds) => $"Rate limit reached for this API key. Retry after {seconds} s.";

    public void Dispose() => _buckets.Dispose();
}

/// <summary>Counts every hub invocation against the caller's <c>Limits:RequestsPerMinute</c>, as HTTP requests are.</summary>
internal sealed class RequestRateHubFilter(KeyRequestBuckets buckets) : IHubFilter
{
    public ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        if (buckets.IsEnabled)
        {
            var caller = invocationContext.Context;
            using var lease = buckets.Acquire(caller.User, caller.GetHttpContext()?.Connection.RemoteIpAddress);
            if (!lease.IsAcquired)
            {
                throw KeyGenerationLimiter.HubRefusal(new Refusal(RefusalKind.RateLimited, KeyRequestBuckets.RefusalMessage(KeyRequestBuckets.RetryAfterSeconds(lease)), RefusalCodes.RateLimitExceeded));
            }
        }

        return next(invocationContext);
    }
}
