using LlmServer.Errors;
using LlmServer.Operations.Health;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

internal static class SessionServiceCollectionExtensions
{
    public const string HubPath = "/hubs/chat";

    public const string RestPath = "/api/sessions";

    /// <summary>Registers the session store, the turns and their generations, and SignalR; options from <c>Sessions</c>, validated at start.</summary>
    public static IServiceCollection AddSessions(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SessionOptions>().Bind(configuration.GetSection(SessionOptions.SectionName))
            .PostConfigure(options =>
            {
                options.ConnectionString ??= configuration.GetConnectionString("Sessions");
                if (string.IsNullOrWhiteSpace(options.ReplicaId))
                {
                    // A SQLite file is one server's, so its restart takes its own turns back at once; replicas
                    // sharing PostgreSQL must never share a name, even on one machine.
                    options.ReplicaId = options.Store == SessionOptions.PostgresStore ? SessionOptions.ProcessReplicaId : Environment.MachineName;
                }
            })
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SessionOptions>, SessionOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton<ISessionStore>(sp => sp.GetRequiredService<IOptions<SessionOptions>>().Value.Store == SessionOptions.PostgresStore
            ? ActivatorUtilities.CreateInstance<PostgresSessionStore>(sp)
            : ActivatorUtilities.CreateInstance<SqliteSessionStore>(sp));
        services.TryAddSingleton<SessionMetrics>();
        services.TryAddSingleton<TurnPlanner>();
        services.TryAddSingleton<GenerationRegistry>();
        services.TryAddSingleton<GenerationPump>();
        services.TryAddSingleton<SessionTurns>();
        services.TryAddSingleton<SessionService>();
        services.AddRefusalWriter(RestPath, SessionErrors.Writer);
        services.AddRefusalWriter(HubPath, SessionErrors.Writer);
        services.AddHostedService<SessionsLifecycle>();
        services.AddHostedService<RemoteStopListener>();
        services.AddHealthChecks().AddCheck<SessionStoreReadinessCheck>("sessions", tags: [HealthEndpoints.ReadyTag]);
        // AddHubOptions marks the hub's options as its own (otherwise SignalR reads only the global ones).
        services.AddSignalR().AddHubOptions<ChatHub>(_ => { });
        services.AddOptions<HubOptions<ChatHub>>().Configure<IOptions<SessionOptions>>((hub, sessions) =>
        {
            // Room for the longest message or system prompt the options allow, even fully JSON-escaped (12 bytes a
            // character: one outside the BMP is two \u escapes), so an over-long one is refused as invalid_argument
            // rather than by closing the connection.
            var longest = Math.Max(sessions.Value.MaxMessageLength, sessions.Value.MaxSystemPromptLength) + sessions.Value.MaxTitleLength;
            hub.MaximumReceiveMessageSize = Math.Max(hub.MaximumReceiveMessageSize ?? 0, (longest * 12L) + 16_384);
        });
        return services;
    }

    /// <summary>Maps the hub at <c>/hubs/chat</c> and the REST mirror under <c>/api/sessions</c>.</summary>
    public static WebApplication MapSessions(this WebApplication app)
    {
        app.MapHub<ChatHub>(HubPath);
        app.MapSessionEndpoints();
        return app;
    }
}
