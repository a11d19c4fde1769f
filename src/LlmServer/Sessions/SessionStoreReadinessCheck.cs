using LlmServer.ReplicaProtocol;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace LlmServer.Sessions;

/// <summary>
/// Ready once the sessions store is up; its data names the store (<see cref="SessionStoreIds.ReadinessField"/>), so
/// the router knows which replicas share sessions and which one holds a session.
/// </summary>
internal sealed class SessionStoreReadinessCheck(ISessionStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(store.StoreId is { Length: > 0 } id
            ? HealthCheckResult.Healthy("ready", new Dictionary<string, object> { [SessionStoreIds.ReadinessField] = id })
            : HealthCheckResult.Unhealthy("sessions store starting"));
}
