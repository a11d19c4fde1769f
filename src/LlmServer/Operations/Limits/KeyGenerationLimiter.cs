using System.Net;
using System.Security.Claims;
using System.Threading.RateLimiting;
using LlmServer.Errors;
using LlmServer.Operations.Auth;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// The per-key allowance of concurrent generations (<c>Limits:ConcurrentGenerationsPerKey</c>), the one home of
/// the permits and their refusal: the HTTP endpoints (through <see cref="GenerationPermitMiddleware"/>) and the
/// SignalR hubs (through <see cref="GenerationHubFilter"/>) take them here, so a key cannot double its allowance by
/// using both. A permit is held as long as the generation it admits (<see cref="CallPermit"/>).
/// </summary>
internal sealed class KeyGenerationLimiter : IDisposable
{
    /// <summary>Retry-After for a refusal: the limiter cannot know when a running generation ends.</summary>
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);

    private const string RefusalMessage = "Too many concurrent generations for this API key. Wait for one to finish.";

    public KeyGenerationLimiter(IOptions<LimitsOptions> options)
    {
        var permits = options.Value.ConcurrentGenerationsPerKey;
        IsEnabled = permits > 0;
        Limiter = PartitionedRateLimiter.Create<string, string>(key =>
            RateLimitPartition.GetConcurrencyLimiter(key, _ => new ConcurrencyLimiterOptions { PermitLimit = Math.Max(1, permits), QueueLimit = 0 }));
    }

    public bool IsEnabled { get; }

    public PartitionedRateLimiter<string> Limiter { get; }

    /// <summary>The refusal over HTTP: 429 with Retry-After, written in the path's API shape.</summary>
    public static Refusal Refusal { get; } = new(RefusalKind.RateLimited, RefusalMessage, "rate_limit_exceeded") { RetryAfter = RetryAfter };

    /// <summary>The caller's partition: its key id, or without keys (anonymous mode) its remote address.</summary>
    public static string PartitionKey(ClaimsPrincipal? user, IPAddress? remoteAddress) =>
        user?.GetApiKeyId() is { } keyId ? "key:" + keyId : "ip:" + (remoteAddress ?? IPAddress.None);

    /// <summary>The refusal on a hub: a <see cref="HubException"/> whose message starts with the stable code.</summary>
    public static HubException HubRefusal() => new($"{Refusal.Code}: {RefusalMessage}");

    /// <summary>
    /// Takes one of the caller's permits into <paramref name="call"/>; false when the caller already runs its
    /// allowance. With the limit off, admits without a permit.
    /// </summary>
    public bool TryAcquire(ClaimsPrincipal? user, IPAddress? remoteAddress, CallPermit call)
    {
        if (!IsEnabled)
        {
            return true;
        }

        var lease = Limiter.AttemptAcquire(PartitionKey(user, remoteAddress));
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            return false;
        }

        call.Hold(new GenerationPermit(lease));
        return true;
    }

    public void Dispose() => Limiter.Dispose();
}
