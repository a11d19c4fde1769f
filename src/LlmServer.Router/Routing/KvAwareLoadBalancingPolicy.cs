using LlmServer.Router.Configuration;
using LlmServer.Router.Replicas;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace LlmServer.Router.Routing;

/// <summary>
/// Chooses the replica for a request among the healthy ones (for a session, those that hold its store: see
/// <see cref="Replicas.ReplicaFailoverMiddleware"/>): a session goes where it last ran; a keyed request
/// (owner, conversation, session id) goes to its place on a bounded-load hash ring; anything else to the least
/// loaded replica.
/// </summary>
internal sealed class KvAwareLoadBalancingPolicy(
    ReplicaLoadMonitor loads,
    SessionReplicaMap sessions,
    IOptionsMonitor<RouterOptions> options) : ILoadBalancingPolicy
{
    private readonly Lock _ringLock = new();
    private (string Members, BoundedLoadHashRing Ring)? _ring;
    private int _tieBreaker;

    public string Name => ReplicaProxyConfigProvider.KvAwareLoadBalancingPolicyName;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        if (availableDestinations.Count == 0)
        {
            return null;
        }

        var key = context.Items[RouteKeyMiddleware.ItemKey] is RouteKey k ? k : RouteKey.None;
        var chosen = Choose(key, availableDestinations);
        loads.Sent(chosen.DestinationId);
        return chosen;
    }

    private DestinationState Choose(RouteKey key, IReadOnlyList<DestinationState> available)
    {
        if (key.SessionId is { } session && sessions.Find(session) is { } known && Find(available, known) is { } warm)
        {
            return warm;
        }

        if (key.Value is { } value)
        {
            var settings = options.CurrentValue;
            var strict = key.Strict || (key.StrictWhenStoresSplit && loads.StoresSplit);
            var picked = RingFor(available).Pick(value, loads.LoadOf, settings.LoadFactor, strict, settings.MinimumSpillLoad);
            if (picked is not null && Find(available, picked) is { } destination)
            {
                return destination;
            }
        }

        // Least loaded; equal loads take turns, so a quiet cluster still spreads new work.
        var offset = Interlocked.Increment(ref _tieBreaker);
        return Enumerable.Range(0, available.Count)
            .Select(i => available[(i + offset) % available.Count])
            .MinBy(d => loads.LoadOf(d.DestinationId))!;
    }

    private BoundedLoadHashRing RingFor(IReadOnlyList<DestinationState> available)
    {
        var members = string.Join('\n', available.Select(d => d.DestinationId).Order(StringComparer.Ordinal));
        lock (_ringLock)
        {
            if (_ring is not { } cached || cached.Members != members)
            {
                _ring = cached = (members, new BoundedLoadHashRing(available.Select(d => d.DestinationId)));
            }

            return cached.Ring;
        }
    }

    private static DestinationState? Find(IReadOnlyList<DestinationState> available, string id)
    {
        foreach (var destination in available)
        {
            if (string.Equals(destination.DestinationId, id, StringComparison.OrdinalIgnoreCase))
            {
                return destination;
            }
        }

        return null;
    }
}
