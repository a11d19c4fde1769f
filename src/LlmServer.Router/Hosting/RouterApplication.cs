using System.Security.Cryptography;
using System.Text;
using LlmServer.Router.Configuration;
using LlmServer.Router.Replicas;
using LlmServer.Router.Routing;
using LlmServer.Router.Sessions;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Transforms;

namespace LlmServer.Router.Hosting;

/// <summary>
/// The router: a YARP gateway in front of LlmServer replicas that sends each conversation where its KV cache is
/// warm. It adds no authentication of its own: API keys pass through to the replicas, which check them.
/// </summary>
public static class RouterApplication
{
    /// <summary>The response header naming the replica that served a request (a hash of its address, not the address).</summary>
    public const string ReplicaHeader = "x-llmserver-replica";

    private static readonly Dictionary<string, string?> DefaultLogLevels = new(StringComparer.Ordinal)
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:Yarp"] = "Warning",
    };

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);

        // Defaults any settings file or argument overrides: ASP.NET Core's and YARP's lines for every request would
        // otherwise fill the log at the rate requests pass.
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = DefaultLogLevels });
        configure?.Invoke(builder);
        var services = builder.Services;
        services.AddSingleton<IValidateOptions<RouterOptions>, RouterOptionsValidator>();
        services.AddOptions<RouterOptions>().Bind(builder.Configuration.GetSection(RouterOptions.SectionName)).ValidateOnStart();
        services.AddSingleton(TimeProvider.System);
        services.AddHttpClient(ReplicaLoadMonitor.HttpClientName);
        services.AddSingleton<ReplicaLoadMonitor>();
        services.AddHostedService(sp => sp.GetRequiredService<ReplicaLoadMonitor>());
        services.AddSingleton(sp => new SessionReplicaMap(sp.GetRequiredService<IOptions<RouterOptions>>().Value.SessionMapCapacity));
        services.AddSingleton<ILoadBalancingPolicy, KvAwareLoadBalancingPolicy>();
        services.AddSingleton<ReplicaFailoverMiddleware>();
        // It carries callers' keys and cookies to the replicas: straight there, as the proxied requests go (no outbound
        // proxy, no shared cookie jar, no redirect that would take the key elsewhere).
        // Its deadline is the listing's own (Router:SessionListTimeout), not the client's default 100 s.
        services.AddHttpClient(SessionListing.HttpClientName, client => client.Timeout = Timeout.InfiniteTimeSpan).ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
        });
        services.AddSingleton<SessionListing>();
        services.AddSingleton<ReplicaProxyConfigProvider>();
        services.AddSingleton<IProxyConfigProvider>(sp => sp.GetRequiredService<ReplicaProxyConfigProvider>());
        services.AddReverseProxy().AddTransforms(transforms =>
        {
            transforms.AddResponseTransform(ReplicaFailoverMiddleware.HoldDrainRefusal);
            transforms.AddResponseTransform(LearnReplica);
        });

        LogRedaction.WrapProviders(services);
        var app = builder.Build();
        app.MapGet("/router/health", (IProxyStateLookup state, ReplicaLoadMonitor loads) => RouterHealth(state, loads));
        var failover = app.Services.GetRequiredService<ReplicaFailoverMiddleware>();
        var listing = app.Services.GetRequiredService<SessionListing>();
        app.MapReverseProxy(pipeline =>
        {
            pipeline.Use(RouteKeyMiddleware.InvokeAsync);
            pipeline.Use(listing.InvokeAsync);
            pipeline.Use(failover.InvokeAsync);
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        return app;
    }

    /// <summary>A replica's public name: stable, and without its internal address.</summary>
    public static string ReplicaName(string replicaAddress) =>
        "replica-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ReplicaProxyConfigProvider.DestinationId(replicaAddress).ToLowerInvariant())), 0, 4);

    /// <summary>Names the replica on the response, and remembers which replica a session ran on.</summary>
    private static ValueTask LearnReplica(ResponseTransformContext context)
    {
        var http = context.HttpContext;
        var replica = http.GetReverseProxyFeature().ProxiedDestination?.DestinationId;
        if (replica is null || context.ProxyResponse is not { } response)
        {
            return ValueTask.CompletedTask;
        }

        http.Response.Headers[ReplicaHeader] = ReplicaName(replica);
        if (!response.IsSuccessStatusCode)
        {
            return ValueTask.CompletedTask;
        }

        var sessions = http.RequestServices.GetRequiredService<SessionReplicaMap>();
        if (http.Items[RouteKeyMiddleware.ItemKey] is RouteKey { SessionId: { } session })
        {
            sessions.Remember(session, replica);
        }
        else if (response.Headers.Location is { } location && http.Request.Path.StartsWithSegments("/api/sessions") &&
                 location.OriginalString.Split('/', StringSplitOptions.RemoveEmptyEntries) is ["api", "sessions", var created])
        {
            sessions.Remember(created, replica);
        }

        return ValueTask.CompletedTask;
    }

    private static IResult RouterHealth(IProxyStateLookup state, ReplicaLoadMonitor loads)
    {
        var replicas = state.TryGetCluster(ReplicaProxyConfigProvider.ClusterId, out var cluster)
            ? cluster.Destinations.Values.Select(d => new RouterReplicaStatus(
                ReplicaName(d.DestinationId),
                d.Model.Config.Address,
                d.Health.Active.ToString().ToLowerInvariant(),
                loads.LoadOf(d.DestinationId),
                loads.IsDraining(d.DestinationId),
                loads.StoreOf(d.DestinationId))).ToArray()
            : [];
        var healthy = replicas.Any(r => r.Health != "unhealthy" && !r.Draining);
        return Results.Json(new RouterHealthStatus(healthy ? "ok" : "unavailable", replicas), statusCode: healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }
}

/// <summary><c>GET /router/health</c>: the router's view of its replicas.</summary>
public sealed record RouterHealthStatus(string Status, IReadOnlyList<RouterReplicaStatus> Replicas);

/// <summary>
/// One replica as the router sees it: health is <c>unknown</c> until the first probe; a draining replica gets no new
/// requests; <see cref="SessionStore"/> is the sessions store it last reported (replicas that share one share their
/// sessions), null until its first reading.
/// </summary>
public sealed record RouterReplicaStatus(string Name, string Address, string Health, int Load, bool Draining, string? SessionStore);
