using System.Net;
using System.Security.Claims;
using System.Threading.RateLimiting;
using LlmServer.Errors;
using LlmServer.Operations.Auth;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Limits;

/// <summary>
/// The per-key allowances of the calls that run the model, the one home of their permits and refusals: concurrent
/// generations (<c>Limits:ConcurrentGenerationsPerKey</c>, a permit held as long as the generation it admits,
/// <see cref="CallPermit"/>) and open responses (<c>Limits:OpenResponsesPerKey</c>, held until the response or hub
/// stream ends, however long its client takes to read it). The HTTP endpoints (through
/// <see cref="GenerationPermitMiddleware"/>) and the SignalR hubs (through <see cref="GenerationHubFilter"/>) take them
/// here, so a key cannot double an allowance by using both.
/// </summary>
internal sealed class KeyGenerationLimiter : IDisposable
{
    /// <summary>Retry-After for a refusal: the limiter cannot know when a running generation or an open response ends.</summary>
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);

    private const string RefusalMessage = "Too many concurrent generations for this API key. Wait for one to finish.";

    private const string OpenResponsesMessage = "Too many open responses for this API key. Read the responses it is being sent, or close them.";

    public KeyGenerationLimiter(IOptions<LimitsOptions> options)
    {
        var permits = options.Value.ConcurrentGenerationsPerKey;
        var open = options.Value.EffectiveOpenResponsesPerKey;
        LimitsGenerations = permits > 0;
        LimitsOpenResponses = open > 0;
        Limiter = Concurrency(permits);
        OpenResponses = Concurrency(open);
    }

    /// <summary>Either allowance is on: the calls that run the model go through <see cref="TryOpenResponse"/> and <see cref="TryAcquire"/>.</summary>
    public bool IsEnabled => LimitsGenerations || LimitsOpenResponses;

    private bool LimitsGenerations { get; }

    private bool LimitsOpenResponses { get; }

    /// <summary>The generation permits, partitioned by <see cref="PartitionKey"/>.</summary>
    public PartitionedRateLimiter<string> Limiter { get; }

    /// <summary>The open responses, partitioned by <see cref="PartitionKey"/>.</summary>
    public PartitionedRateLimiter<string> OpenResponses { get; }

    /// <summary>The refusal over HTTP: 429 with Retry-After, written in the path's API shape.</summary>
    public static Refusal Refusal { get; } = new(RefusalKind.RateLimited, RefusalMessage, RefusalCodes.RateLimitExceeded) { RetryAfter = RetryAfter };

    /// <summary>The refusal of a call beyond the key's open responses, over HTTP; the code is the same as <see cref="Refusal"/>'s.</summary>
    public static Refusal OpenResponsesRefusal { get; } = new(RefusalKind.RateLimited, OpenResponsesMessage, RefusalCodes.RateLimitExceeded) { RetryAfter = RetryAfter };

    /// <summary>The caller's partition: its key id, or without keys (anonymous mode) its remote address.</summary>
    public static string PartitionKey(ClaimsPrincipal? user, IPAddress? remoteAddress) =>
        user?.GetApiKeyId() is { } keyId ? "key:" + keyId : "ip:" + (remoteAddress ?? IPAddress.None);

    /// <summary>The refusal on a hub: a <see cref="HubException"/> whose message starts with the stable code.</summary>
    public static HubException HubRefusal(Refusal refusal) => new($"{refusal.Code}: {refusal.Message}");

    /// <summary>
    /// Takes one of the caller's open responses, to dispose of when the response ends; false when the caller has its
    /// allowance open already. With the limit off, admits and returns null.
    /// </summary>
    public bool TryOpenResponse(ClaimsPrincipal? user, IPAddress? remoteAddress, out IDisposable? response)
    {
        response = null;
        if (!LimitsOpenResponses)
        {
            return true;
        }

        var lease = OpenResponses.AttemptAcquire(PartitionKey(user, remoteAddress));
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            return false;
        }

        response = lease;
        return true;
    }

    /// <summary>
    /// Takes one of the caller's generation permits into <paramref name="call"/>; false when the caller already runs
    /// its allowance. With the limit off, admits without a permit.
    /// </summary>
    public bool TryAcquire(ClaimsPrincipal? user, IPAddress? remoteAddress, CallPermit call)
    {
        if (!LimitsGenerations)
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

    public void Dispose()
    {
        Limiter.Dispose();
        OpenResponses.Dispose();
    }

    private static PartitionedRateLimiter<string> Concurrency(int permits) =>
        PartitionedRateLimiter.Create<string, string>(key =>
            RateLimitPartition.GetConcurrencyLimiter(key, _ => new ConcurrencyLimiterOptions { PermitLimit = Math.Max(1, permits), QueueLimit = 0 }));
}
