using LlmServer.Errors;
using LlmServer.Operations.Auth;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Operations.Limits;

/// <summary>
/// Per-key limits: a token bucket of <c>Limits:RequestsPerMinute</c> (<see cref="KeyRequestBuckets"/>) over every API
/// request (ASP.NET Core rate limiting) and hub invocation, then the <see cref="KeyGenerationLimiter"/>'s concurrent generations, taken by
/// <see cref="GenerationPermitMiddleware"/> for the endpoints marked <see cref="GenerationEndpoint"/> and by
/// <see cref="GenerationHubFilter"/> for the hub methods marked <see cref="RunsModelAttribute"/>. Refusals are 429
/// with <c>Retry-After</c>.
/// </summary>
internal static class KeyRateLimiting
{
    public static IServiceCollection AddKeyRateLimiting(this IServiceCollection services)
    {
        services.AddSingleton<KeyGenerationLimiter>();
        services.AddSingleton<KeyRequestBuckets>();
        services.AddScoped<CallPermit>();
        services.AddSingleton<GenerationHubFilter>();
        services.AddSingleton<RequestRateHubFilter>();
        services.AddOptions<HubOptions>().Configure(hub =>
        {
            hub.AddFilter<RequestRateHubFilter>();
            hub.AddFilter<GenerationHubFilter>();
        });
        services.AddOptions<RateLimiterOptions>().Configure<KeyRequestBuckets, ProtectedPaths>((rateLimiter, buckets, protectedPaths) =>
        {
            rateLimiter.GlobalLimiter = buckets.IsEnabled ? buckets.ForRequests(protectedPaths) : null;
            rateLimiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            rateLimiter.OnRejected = OnRejectedAsync;
        });
        return services;
    }

    private static async ValueTask OnRejectedAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var seconds = KeyRequestBuckets.RetryAfterSeconds(context.Lease);
        var refusal = new Refusal(RefusalKind.RateLimited, KeyRequestBuckets.RefusalMessage(seconds), RefusalCodes.RateLimitExceeded)
        {
            RetryAfter = TimeSpan.FromSeconds(seconds),
        };
        await context.HttpContext.RefuseAsync(refusal, cancellationToken);
    }
}
