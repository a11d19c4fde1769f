using System.Threading.RateLimiting;
using LlmServer.Errors;
using LlmServer.Operations.Auth;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Per-key limits: a token bucket of <c>Limits:RequestsPerMinute</c> over every API request (ASP.NET Core rate
/// limiting), then the <see cref="KeyGenerationLimiter"/>'s concurrent generations, taken by
/// <see cref="GenerationPermitMiddleware"/> for the endpoints marked <see cref="GenerationEndpoint"/> and by
/// <see cref="GenerationHubFilter"/> for the hub methods marked <see cref="RunsModelAttribute"/>. Refusals are 429
/// with <c>Retry-After</c>.
/// </summary>
internal static class KeyRateLimiting
{
    public static IServiceCollection AddKeyRateLimiting(this IServiceCollection services)
    {
        services.AddSingleton<KeyGenerationLimiter>();
        services.AddScoped<CallPermit>();
        services.AddSingleton<GenerationHubFilter>();
        services.AddOptions<HubOptions>().Configure(hub => hub.AddFilter<GenerationHubFilter>());
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<LimitsOptions>, ProtectedPaths>((rateLimiter, limitsOptions, protectedPaths) =>
        {
            var perMinute = limitsOptions.Value.RequestsPerMinute;
            rateLimiter.GlobalLimiter = perMinute > 0
                ? PartitionedRateLimiter.Create<HttpContext, string>(context =>
                    protectedPaths.Contains(context.Request.Path)
                        ? RateLimitPartition.GetTokenBucketLimiter(
                            KeyGenerationLimiter.PartitionKey(context.User, context.Connection.RemoteIpAddress),
                            _ => RequestsPerMinute(perMinute))
                        : RateLimitPartition.GetNoLimiter(string.Empty))
                : null;
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
        // The token bucket states when its next token comes; at least a second.
        var seconds = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)) : 1;
        var refusal = new Refusal(RefusalKind.RateLimited, $"Rate limit reached for this API key. Retry after {seconds} s.", "rate_limit_exceeded")
        {
            RetryAfter = TimeSpan.FromSeconds(seconds),
        };
        await context.HttpContext.RefuseAsync(refusal, cancellationToken);
    }
}
