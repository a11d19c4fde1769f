using LlmServer.Sessions;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace LlmServer.Operations.Metrics;

/// <summary>
/// OpenTelemetry for the server: the engine's meter (<c>LlmServer.Engine</c>, vLLM-style instrument names), the
/// sessions' (<c>LlmServer.Sessions</c>) and
/// ASP.NET Core's HTTP metrics, scraped in Prometheus text format at <c>/metrics</c>; traces, metrics and logs
/// also go to an OTLP collector when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.
/// </summary>
internal static class OperationsTelemetry
{
    public const string EngineMeterName = "LlmServer.Engine";

    public const string EngineActivitySourceName = "LlmServer.Engine";

    public static IServiceCollection AddOperationsTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("llmserver", serviceVersion: BuildInfo.Version))
            .WithMetrics(metrics => metrics
                .AddMeter(EngineMeterName)
                .AddMeter(SessionMetrics.MeterName)
                .AddAspNetCoreInstrumentation()
                .AddPrometheusExporter(options => options.ScrapeResponseCacheDurationMilliseconds = 0));

        if (!string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            telemetry
                .WithTracing(tracing => tracing.AddSource(EngineActivitySourceName).AddAspNetCoreInstrumentation())
                .UseOtlpExporter();
        }

        return services;
    }

    public static IEndpointRouteBuilder MapOperationsMetrics(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPrometheusScrapingEndpoint().DisableHttpMetrics();
        return endpoints;
    }
}
