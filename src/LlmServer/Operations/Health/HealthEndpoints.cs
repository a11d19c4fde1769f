using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace LlmServer.Operations.Health;

/// <summary><c>/health/live</c> (the process answers), <c>/health/ready</c> and <c>/health</c> (the engine serves).</summary>
internal static class HealthEndpoints
{
    /// <summary>The tag of the checks <c>/health/ready</c> runs; each adds its data to the answer.</summary>
    public const string ReadyTag = "ready";

    public static IServiceCollection AddOperationsHealthChecks(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<HealthOptions>().Bind(configuration.GetSection(HealthOptions.SectionName))
            .Validate(o => o.DecodeStallSeconds > 0, "Health:DecodeStallSeconds must be more than 0.").ValidateOnStart();
        services.AddHealthChecks().AddCheck<EngineReadinessCheck>("engine", tags: [ReadyTag]);
        return services;
    }

    public static IEndpointRouteBuilder MapOperationsHealthChecks(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync });
        var ready = new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync };
        endpoints.MapHealthChecks("/health/ready", ready);
        endpoints.MapHealthChecks("/health", ready);
        return endpoints;
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.Headers.CacheControl = "no-store";
        // The reason is the worst check's (the engine's while it is healthy too: it is registered first).
        var entry = report.Entries.Values.FirstOrDefault(e => e.Status == report.Status);
        var body = new Dictionary<string, object?>
        {
            ["status"] = report.Status == HealthStatus.Healthy ? "ok" : "unavailable",
            ["reason"] = entry.Description,
        };
        foreach (var (key, value) in report.Entries.Values.SelectMany(e => e.Data))
        {
            body[key] = value;
        }

        return context.Response.WriteAsJsonAsync(body, JsonSerializerOptions.Web, context.RequestAborted);
    }
}
