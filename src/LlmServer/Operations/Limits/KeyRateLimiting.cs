using System.Threading.RateLimiting;
using LlmServer.Errors;
using LlmServer.Operations.Auth;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Per-key limits with ASP.NET Core rate limiting: a token bucket of <c>Limits:RequestsPerMinute</c> over every
/// API request, chained with the <see cref="KeyGenerationLimiter"/> over the requests to endpoints marked
/// <see cref="GenerationEndpoint"/> (held until the response, stream included, ends) and, through
/// <see cref="GenerationHubFilter"/>, the hub methods that generate. Refusals are 429 with <c>Retry-After</c>.
/// </summary>
internal static class KeyRateLimiting
{
    /// <summary>Retry-After for a refused concurrent generation: the limiter cannot know when a running one ends.</summary>
    private static readonly TimeSpan ConcurrencyRetryAfter = TimeSpan.FromSeconds(1);

    public static IServiceCollection AddKeyRateLimiting(this IServiceCollection services)
    {
        services.AddSingleton<KeyGenerationLimiter>();
        services.AddSingleton<GenerationHubFilter>();
        services.AddOptions<HubOptions>().Configure(hub => hub.AddFilter<GenerationHubFilter>());
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<LimitsOptions>, ProtectedPaths, KeyGenerationLimiter>((rateLimiter, limitsOptions, protectedPaths, generations) =>
        {
            var limits = limitsOptions.Value;
            var limiters = new List<PartitionedRateLimiter<HttpContext>>();
            if (limits.RequestsPerMinute > 0)
            {
                limiters.Add(PartitionedRateLimiter.Create<HttpContext, string>(context =>
                    protectedPaths.Contains(context.Request.Path)
                        ? RateLimitPartition.GetTokenBucketLimiter(
                            KeyGenerationLimiter.PartitionKey(context.User, context.Connection.RemoteIpAddress),
                            _ => RequestsPerMinute(limits.RequestsPerMinute))
                        : RateLimitPartition.GetNoLimiter(string.Empty)));
            }

            if (generations.IsEnabled)
            {
                limiters.Add(generations.Limiter.WithTranslatedKey<HttpContext>(
                    context => GenerationEndpoint.Runs(context)
                        ? KeyGenerationLimiter.PartitionKey(context.User, context.Connection.RemoteIpAddress)
                        : KeyGenerationLimiter.Unlimited,
                    leaveOpen: true));
            }

            rateLimiter.GlobalLimiter = limiters.Count switch
            {
                0 => null,
                1 => limiters[0],
                _ => PartitionedRateLimiter.CreateChained([.. limiters]),
            };
            rateLimiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            rateLimiter.OnRejected = OnRejectedAsync;
        });
        return services;
    }

    private static TokenBucketRateLimiterOptions RequestsPerMinute(int perMinute) => new()
    {
        TokenLimit = perMinute,
        TokensPerPeriod = 1,
        ReplenishmentPeriod = TimeSpan.FromMinutes(1) / perMinute,
        QueueLimit = 0,
        AutoReplenishment = true,
    };

    private static async ValueTask OnRejectedAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var byRate = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter);
        var seconds = (int)Math.Ceiling((byRate ? retryAfter : ConcurrencyRetryAfter).TotalSeconds);
        var message = byRate
            ? $"Rate limit reached for this API key. Retry after {Math.Max(1, seconds)} s."
            : "Too many concurrent generations for this API key. Wait for one to finish.";
        var refusal = new Refusal(RefusalKind.RateLimited, message, "rate_limit_exceeded")
        {
            RetryAfter = TimeSpan.FromSeconds(Math.Max(1, seconds)),
        };
        await context.HttpContext.RefuseAsync(refusal, cancellationToken);
    }
}
