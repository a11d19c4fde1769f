using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace LlmServer.Health;

internal static class HealthEndpoints
{
    public static IServiceCollection AddEngineHealthChecks(this IServiceCollection services)
    {
        services.AddHealthChecks().AddCheck<EngineReadinessCheck>("engine", tags: ["ready"]);
        return services;
    }

    public static WebApplication MapEngineHealthChecks(this WebApplication app)
    {
        app.MapHealthChecks("/health", new() { Predicate = c => c.Tags.Contains("ready") });
        return app;
    }
}

/// <summary>Ready when the model is loaded, the scheduler loop runs, and the engine admits requests.</summary>
internal sealed class EngineReadinessCheck(ITextGenerator generator) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var state = generator.State;
        var status = generator.GetStatus();
        var result = state == EngineState.Ready && status.LoopAlive
            ? HealthCheckResult.Healthy("serving")
            : HealthCheckResult.Unhealthy(state == EngineState.Ready ? "scheduler loop stopped" : state.ToString().ToLowerInvariant());
        return Task.FromResult(result);
    }
}
