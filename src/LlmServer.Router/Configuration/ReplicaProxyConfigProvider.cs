using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;

namespace LlmServer.Router.Configuration;

/// <summary>
/// Turns <see cref="RouterOptions"/> into YARP's configuration: one catch-all route to one cluster of replicas,
/// with active health checks on <c>/health/ready</c>. A configuration reload swaps the replicas without a restart.
/// </summary>
internal sealed class ReplicaProxyConfigProvider : IProxyConfigProvider, IDisposable
{
    public const string ClusterId = "replicas";
    public const string ReadyPath = "/health/ready";

    private readonly IDisposable? _subscription;
    private volatile ReplicaProxyConfig _config;

    public ReplicaProxyConfigProvider(IOptionsMonitor<RouterOptions> options)
    {
        _config = new ReplicaProxyConfig(options.CurrentValue);
        _subscription = options.OnChange(updated =>
        {
            var previous = _config;
            _config = new ReplicaProxyConfig(updated);
            previous.SignalChange();
        });
    }

    public IProxyConfig GetConfig() => _config;

    public void Dispose() => _subscription?.Dispose();

    /// <summary>The destination id of a replica: its address without a trailing slash, stable across reloads.</summary>
    public static string DestinationId(string replica) => replica.TrimEnd('/');

    private sealed class ReplicaProxyConfig : IProxyConfig
    {
        private readonly CancellationTokenSource _changed = new();

        public ReplicaProxyConfig(RouterOptions options)
        {
            Routes =
            [
                new RouteConfig { RouteId = "all", ClusterId = ClusterId, Match = new RouteMatch { Path = "{**catch-all}" } },
            ];
            Clusters =
            [
                new ClusterConfig
                {
                    ClusterId = ClusterId,
                    LoadBalancingPolicy = KvAwareLoadBalancingPolicyName,
                    Destinations = options.Replicas.ToDictionary(DestinationId, r => new DestinationConfig { Address = r }, StringComparer.OrdinalIgnoreCase),
                    HealthCheck = new HealthCheckConfig
                    {
                        AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyAndUnknown,
                        Active = new ActiveHealthCheckConfig
                        {
                            Enabled = true,
                            Interval = options.HealthCheckInterval,
                            Timeout = options.HealthCheckTimeout,
                            Policy = HealthCheckConstants.ActivePolicy.ConsecutiveFailures,
                            Path = ReadyPath,
                        },
                        Passive = new PassiveHealthCheckConfig
                        {
                            Enabled = true,
                            Policy = HealthCheckConstants.PassivePolicy.TransportFailureRate,
                            ReactivationPeriod = options.HealthCheckInterval,
                        },
                    },
                    HttpRequest = new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig { ActivityTimeout = options.ActivityTimeout },
                },
            ];
            ChangeToken = new CancellationChangeToken(_changed.Token);
        }

        public IReadOnlyList<RouteConfig> Routes { get; }

        public IReadOnlyList<ClusterConfig> Clusters { get; }

        public IChangeToken ChangeToken { get; }

        public void SignalChange() => _changed.Cancel();
    }

    /// <summary>The name the cluster's configuration gives <see cref="Routing.KvAwareLoadBalancingPolicy"/>.</summary>
    public const string KvAwareLoadBalancingPolicyName = "KvAware";
}
