using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Operations.Lifecycle;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Health;

/// <summary>
/// Ready when the model is loaded, the scheduler loop runs, the server is not draining, and, while requests are
/// in flight, a decode step completed recently or the work is new (no work counts as healthy).
/// </summary>
internal sealed class EngineReadinessCheck(
    ITextGenerator generator,
    GracefulShutdown shutdown,
    TimeProvider timeProvider,
    IOptions<HealthOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var state = generator.State;
        var status = generator.GetStatus();
        var data = new Dictionary<string, object>
        {
            ["state"] = state.ToString().ToLowerInvariant(),
            ["running"] = status.Running,
            ["waiting"] = status.Waiting,
        };
        if (status.LastDecodeAt is { } lastDecode)
        {
            data["last_decode_at"] = lastDecode;
        }

        var stall = TimeSpan.FromSeconds(options.Value.DecodeStallSeconds);
        var stalledFor = status.StalledFor(timeProvider.GetUtcNow());
        var result = (shutdown.IsDraining, state, status.LoopAlive) switch
        {
            (true, _, _) => HealthCheckResult.Unhealthy("draining", data: data),
            (_, not EngineState.Ready, _) => HealthCheckResult.Unhealthy(state.ToString().ToLowerInvariant(), data: data),
            (_, _, false) => HealthCheckResult.Unhealthy("scheduler loop stopped", data: data),
            _ when stalledFor > stall =>
                HealthCheckResult.Unhealthy($"no decode step completed in the last {stall.TotalSeconds:0} s with requests in flight", data: data),
            _ => HealthCheckResult.Healthy("ready", data),
        };
        return Task.FromResult(result);
    }
}
