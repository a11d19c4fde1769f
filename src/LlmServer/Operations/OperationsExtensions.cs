using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.Operations.Auth;
using LlmServer.Operations.Health;
using LlmServer.Operations.Lifecycle;
using LlmServer.Operations.Limits;
using LlmServer.Operations.Metrics;
using LlmServer.Operations.ModelDownload;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations;

/// <summary>
/// What an operator needs before exposing the server: metrics, health, <c>/props</c>, API keys, CORS, limits and a
/// graceful shutdown. <see cref="AddOperations"/> must come after the engine's registration (it decorates
/// <see cref="ITextGenerator"/>); <see cref="UseOperations"/> must come before the other features' middleware.
/// </summary>
public static partial class OperationsExtensions
{
    /// <summary>Settings that no longer exist: each one still set is named in a warning at start.</summary>
    private static readonly string[] RemovedSettings = ["Limits:GenerationPaths", "Limits:HubGenerationMethods"];

    public static WebApplicationBuilder AddOperations(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;

        services.AddOptions<ServerOptions>().Bind(configuration.GetSection(ServerOptions.SectionName)).ValidateOnStart();
        services.AddOptions<ApiKeyOptions>().Bind(configuration.GetSection(ApiKeyOptions.SectionName)).ValidateOnStart();
        services.AddOptions<LimitsOptions>().Bind(configuration.GetSection(LimitsOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ServerOptions>, ServerOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ApiKeyOptions>, ApiKeyOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LimitsOptions>, LimitsOptionsValidator>());

        // Read before the host exists (ModelPathResolver), but validated with the rest: the download waits for valid settings.
        services.AddOptions<ModelDownloadOptions>().Bind(configuration.GetSection(ModelDownloadOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ModelDownloadOptions>, ModelDownloadOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        // Refusals here are written by the front end that owns the path; each front end registers its writer.
        services.TryAddSingleton<RefusalWriters>();

        var startup = new StartupNotes(RequiresKeys(configuration), configuration.GetValue<bool>($"{ServerOptions.SectionName}:{nameof(ServerOptions.AllowRemoteWithoutKeys)}"))
        {
            // Removed settings still set would otherwise be ignored without a word.
            Removed = [.. RemovedSettings.Where(setting => configuration.GetSection(setting).Exists())],
        };
        if (!startup.RequiresKeys && !startup.AllowRemote)
        {
            startup.Rebound.AddRange(LoopbackBinding.RestrictToLoopback(builder));
        }

        services.AddSingleton(startup);

        services.AddOptions<KestrelServerOptions>().Configure<IOptions<ServerOptions>>((kestrel, server) => kestrel.Limits.MaxRequestBodySize = server.Value.MaxRequestBodyBytes);
        services.AddOptions<HostOptions>().Configure<IOptions<ServerOptions>>((host, server) =>
        {
            // The host must outlast the drain, or it would kill the generations the drain waits for.
            var needed = TimeSpan.FromSeconds(server.Value.DrainSeconds + 15);
            host.ShutdownTimeout = needed > host.ShutdownTimeout ? needed : host.ShutdownTimeout;
        });
        services.AddCors();
        services.AddOptions<CorsOptions>().Configure<IOptions<ServerOptions>>((cors, server) => cors.AddDefaultPolicy(policy =>
        {
            var origins = server.Value.CorsOrigins;
            _ = origins.Contains("*") ? policy.AllowAnyOrigin() : policy.WithOrigins([.. origins]);
            policy.AllowAnyHeader().AllowAnyMethod().WithExposedHeaders("Retry-After");
        }));

        services.AddSingleton<ApiKeyStore>();
        services.AddSingleton<ProtectedPaths>();
        services.AddAuthentication(ApiKeyAuthentication.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthentication.SchemeName, null);
        services.AddAuthorization();
        services.AddRateLimiter(_ => { });
        services.AddKeyRateLimiting();
        DecorateTextGenerator(services, (sp, engine) => new PromptLimitingTextGenerator(engine, sp.GetRequiredService<IOptions<LimitsOptions>>()));

        services.AddSingleton<GracefulShutdown>();
        services.AddHostedService(sp => sp.GetRequiredService<GracefulShutdown>());
        services.AddSingleton<DrainHubFilter>();
        services.AddOptions<HubOptions>().Configure(hub => hub.AddFilter<DrainHubFilter>());
        services.AddOperationsHealthChecks(configuration);
        services.AddOperationsTelemetry(configuration);
        return builder;
    }

    /// <summary>The operations middleware (in order: remote guard, CORS, keys, body size, drain, request rate, concurrent generations) and endpoints.</summary>
    public static WebApplication UseOperations(this WebApplication app)
    {
        var startup = app.Services.GetRequiredService<StartupNotes>();
        var server = app.Services.GetRequiredService<IOptions<ServerOptions>>().Value;
        LogStartup(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("LlmServer.Operations"), startup, app.Services.GetRequiredService<ApiKeyStore>().Count);

        if (!startup.RequiresKeys && !startup.AllowRemote)
        {
            app.UseMiddleware<RemoteAccessGuardMiddleware>();
        }

        if (server.CorsOrigins.Count > 0)
        {
            app.UseCors();
        }

        app.UseAuthentication();
        app.UseMiddleware<ApiKeyGateMiddleware>();
        app.UseMiddleware<RequestBodyLimitMiddleware>();
        app.UseAuthorization();
        app.UseMiddleware<DrainingMiddleware>();
        app.UseRateLimiter();
        app.UseMiddleware<GenerationPermitMiddleware>();

        app.MapOperationsHealthChecks();
        app.MapOperationsMetrics();
        app.MapProps();
        return app;
    }

    private static bool RequiresKeys(IConfiguration configuration)
    {
        var options = new ApiKeyOptions();
        configuration.GetSection(ApiKeyOptions.SectionName).Bind(options);
        return ApiKeyStore.ReadKeys(options).Any();
    }

    /// <summary>Puts a decorator (<see cref="PromptLimitingTextGenerator"/>, a test's hook) in front of the registered <see cref="ITextGenerator"/>.</summary>
    internal static void DecorateTextGenerator(IServiceCollection services, Func<IServiceProvider, ITextGenerator, ITextGenerator> decorate)
    {
        var engine = services.LastOrDefault(d => d.ServiceType == typeof(ITextGenerator) && !d.IsKeyedService)
            ?? throw new InvalidOperationException("AddOperations needs the engine: call AddLlmServerEngine first.");
        services.Remove(engine);
        services.AddSingleton<ITextGenerator>(sp => decorate(
            sp,
            engine.ImplementationInstance as ITextGenerator
                ?? (ITextGenerator?)engine.ImplementationFactory?.Invoke(sp)
                ?? (ITextGenerator)ActivatorUtilities.GetServiceOrCreateInstance(sp, engine.ImplementationType!)));
    }

    private static void LogStartup(ILogger logger, StartupNotes startup, int keyCount)
    {
        foreach (var setting in startup.Removed)
        {
            LogRemovedSetting(logger, setting);
        }

        if (startup.RequiresKeys)
        {
            LogKeysRequired(logger, keyCount);
        }
        else if (startup.AllowRemote)
        {
            LogOpenToEveryone(logger);
        }
        else
        {
            LogLoopbackOnly(logger, startup.Rebound.Count == 0 ? "no address had to change" : string.Join(", ", startup.Rebound));
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Setting} is no longer read and is ignored: every endpoint and hub method that runs the model counts against Limits:ConcurrentGenerationsPerKey.")]
    private static partial void LogRemovedSetting(ILogger logger, string setting);

    [LoggerMessage(Level = LogLevel.Information, Message = "API keys required ({Count} configured).")]
    private static partial void LogKeysRequired(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No API keys configured (Auth:ApiKeys, Auth:ApiKeysFile) and Server:AllowRemoteWithoutKeys is on: anyone who can reach this server may use it.")]
    private static partial void LogOpenToEveryone(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No API keys configured (Auth:ApiKeys, Auth:ApiKeysFile): listening on loopback only ({Changes}). Configure keys, or set Server:AllowRemoteWithoutKeys=true, to serve other machines.")]
    private static partial void LogLoopbackOnly(ILogger logger, string changes);
}

/// <summary>What start-up decided about keys and listen addresses, for the warnings and the remote guard.</summary>
internal sealed record StartupNotes(bool RequiresKeys, bool AllowRemote)
{
    public List<string> Rebound { get; } = [];

    /// <summary>Settings that are set but no longer exist (a warning at start).</summary>
    public IReadOnlyList<string> Removed { get; init; } = [];
}

/// <summary>Without keys, refuses connections that are not from this machine (for example through a port forward) as a second line behind the loopback binding.</summary>
internal sealed class RemoteAccessGuardMiddleware(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (!LoopbackBinding.IsLoopback(context.Connection.RemoteIpAddress))
        {
            await context.RefuseAsync(new Refusal(RefusalKind.Forbidden, "This server has no API keys configured and accepts local connections only.", "remote_access_disabled"), context.RequestAborted);
            return;
        }

        await next(context);
    }
}
