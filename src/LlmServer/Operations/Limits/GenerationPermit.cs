using System.Threading.RateLimiting;
using LlmServer.Engine.Generation;

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
/// it when it ends, or earlier, once the engine is done with the generations it streams (<see cref="ReleaseWhenEnded"/>:
/// a client that reads slowly must not keep its key's permit after the work is done), unless what it started outlives
/// it (a session turn) and <see cref="Take"/>s it: then the permit lives as long as that generation.
/// </summary>
internal sealed class CallPermit
{
    private GenerationPermit? _permit;

    /// <summary>Hands the call's permit over to its new owner; null when the call holds none (no limit configured).</summary>
    public GenerationPermit? Take() => Interlocked.Exchange(ref _permit, null);

    internal void Hold(GenerationPermit permit) => _permit = permit;

    /// <summary>
    /// Releases the permit as soon as the engine has ended every one of <paramref name="streams"/> (finished, cancelled
    /// or failed), however much of them the client has still to read; the call's end releases it if that comes first.
    /// </summary>
    public void ReleaseWhenEnded(IReadOnlyList<GenerationStream> streams)
    {
        if (Volatile.Read(ref _permit) is null)
        {
            return;
        }

        var ended = streams.Count == 1 ? streams[0].Ended : Task.WhenAll(streams.Select(s => s.Ended));
        ended.ContinueWith(static (_, call) => ((CallPermit)call!).Release(), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>The call ended: releases the permit unless it was taken.</summary>
    internal void Release() => Take()?.Dispose();
}

/// <summary>How an HTTP front end hands its request's permit to the generations it started.</summary>
internal static class CallPermitHttpExtensions
{
    /// <summary>
    /// The request's permit goes back once the engine has ended <paramref name="streams"/> (<see cref="CallPermit.ReleaseWhenEnded"/>).
    /// A batch line runs the handler on a context of its own, without services: it holds no permit.
    /// </summary>
    public static void ReleasePermitWhenEnded(this HttpContext context, params IReadOnlyList<GenerationStream> streams) =>
        (context.RequestServices as IServiceProvider)?.GetService<CallPermit>()?.ReleaseWhenEnded(streams);
}
