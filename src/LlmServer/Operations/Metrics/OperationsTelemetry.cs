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

    /// <summary>vLLM's buckets, so its dashboards' quantiles read the same.</summary>
    private static readonly double[] TimeToFirstTokenBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];

    private static readonly double[] InterTokenLatencyBuckets = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

    private static readonly double[] RequestLatencyBuckets = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

    public static IServiceCollection AddOperationsTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("llmserver", serviceVersion: BuildInfo.Version))
            .WithMetrics(metrics => metrics
                .AddMeter(EngineMeterName)
                .AddMeter(SessionMetrics.MeterName)
                .AddAspNetCoreInstrumentation()
                .AddView("llmserver.time_to_first_token", new ExplicitBucketHistogramConfiguration { Boundaries = TimeToFirstTokenBuckets })
                .AddView("llmserver.inter_token_latency", new ExplicitBucketHistogramConfiguration { Boundaries = InterTokenLatencyBuckets })
                .AddView("llmserver.e2e_request_latency", new ExplicitBucketHistogramConfiguration { Boundaries = RequestLatencyBuckets })
                .AddView("llmserver.request_queue_time", new ExplicitBucketHistogramConfiguration { Boundaries = RequestLatencyBuckets })
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
