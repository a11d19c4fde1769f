using System.Diagnostics.Metrics;
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
        // The only view, and it must stay so: an instrument that several views match gets a stream from each that
        // keeps it, so a second AddView would export other hosts' instruments again. A future view goes inside this one.
        services.ConfigureOpenTelemetryMeterProvider((provider, metrics) => metrics.AddView(OwnMetersOnly(provider.GetRequiredService<IMeterFactory>())));

        if (!string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            telemetry
                .WithTracing(tracing => tracing.AddSource(EngineActivitySourceName).AddAspNetCoreInstrumentation())
                .UseOtlpExporter();
        }

        return services;
    }

    /// <summary>
    /// Keeps only the instruments of meters this host's <paramref name="meterFactory"/> made. AddMeter listens by name
    /// to every meter in the process: another host's engine (a second server, an in-process chat client beside this
    /// one) would otherwise count into this server's exporters, its instruments merged into the same streams.
    /// </summary>
    private static Func<Instrument, MetricStreamConfiguration?> OwnMetersOnly(IMeterFactory meterFactory) =>
        instrument => ReferenceEquals(instrument.Meter.Scope, meterFactory) ? null : MetricStreamConfiguration.Drop;

    public static IEndpointRouteBuilder MapOperationsMetrics(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPrometheusScrapingEndpoint().DisableHttpMetrics();
        return endpoints;
    }
}
