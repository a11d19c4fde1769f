using System.Net;
using System.Security.Claims;
using System.Threading.RateLimiting;
using LlmServer.Operations.Auth;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// The per-key allowance of concurrent generations (<c>Limits:ConcurrentGenerationsPerKey</c>), shared by the HTTP
/// endpoints (through the rate-limiting middleware) and the SignalR hubs (through <see cref="GenerationHubFilter"/>),
/// so a key cannot double its allowance by using both.
/// </summary>
internal sealed class KeyGenerationLimiter : IDisposable
{
    /// <summary>The partition of requests that do not generate: never limited.</summary>
    public const string Unlimited = "";

    public KeyGenerationLimiter(IOptions<LimitsOptions> options)
    {
        var permits = options.Value.ConcurrentGenerationsPerKey;
        IsEnabled = permits > 0;
        Limiter = PartitionedRateLimiter.Create<string, string>(key =>
            !IsEnabled || key.Length == 0
                ? RateLimitPartition.GetNoLimiter(Unlimited)
                : RateLimitPartition.GetConcurrencyLimiter(key, _ => new ConcurrencyLimiterOptions { PermitLimit = permits, QueueLimit = 0 }));
    }

    public bool IsEnabled { get; }

    public PartitionedRateLimiter<string> Limiter { get; }

    /// <summary>The caller's partition: its key id, or without keys (anonymous mode) its remote address.</summary>
    public static string PartitionKey(ClaimsPrincipal? user, IPAddress? remoteAddress) =>
        user?.GetApiKeyId() is { } keyId ? "key:" + keyId : "ip:" + (remoteAddress ?? IPAddress.None);

    public void Dispose() => Limiter.Dispose();
}
