using System.Threading.RateLimiting;

namespace LlmServer.Operations.Limits;

/// <summary>
/// One of a key's <c>Limits:ConcurrentGenerationsPerKey</c> permits, taken by <see cref="KeyGenerationLimiter"/>.
/// Whoever holds it last releases it, exactly once (a second release does nothing).
/// </summary>
internal sealed class GenerationPermit : IDisposable
{
    private RateLimitLease? _lease;

    public GenerationPermit(RateLimitLease lease)
    {
        _lease = lease;
    }

    public void Dispose() => Interlocked.Exchange(ref _lease, null)?.Dispose();
}

/// <summary>
/// The permit the current call (an HTTP request to a <see cref="GenerationEndpoint"/>, or a hub method marked
/// <see cref="RunsModelAttribute"/>) took when it started; scoped to the request or hub invocation. The call releases
/// it when it ends, unless what it started outlives it (a session turn) and <see cref="Take"/>s it: then the
/// permit lives as long as that generation.
/// </summary>
internal sealed class CallPermit
{
    private GenerationPermit? _permit;

    /// <summary>Hands the call's permit over to its new owner; null when the call holds none (no limit configured).</summary>
    public GenerationPermit? Take() => Interlocked.Exchange(ref _permit, null);

    internal void Hold(GenerationPermit permit) => _permit = permit;

    /// <summary>The call ended: releases the permit unless it was taken.</summary>
    internal void Release() => Take()?.Dispose();
}
