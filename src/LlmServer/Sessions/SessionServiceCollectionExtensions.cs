using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

internal static class SessionServiceCollectionExtensions
{
    /// <summary>Registers the session store, the generation manager and SignalR; options from <c>Sessions</c>, validated at start.</summary>
    public static IServiceCollection AddSessions(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SessionOptions>().Bind(configuration.GetSection(SessionOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SessionOptions>, SessionOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<SessionStore>();
        services.TryAddSingleton<SessionGenerationManager>();
        services.TryAddSingleton<SessionService>();
        services.AddHostedService(sp => sp.GetRequiredService<SessionGenerationManager>());
        services.AddSignalR();
        return services;
    }

    /// <summary>Maps the hub at <c>/hubs/chat</c> and the REST mirror under <c>/api/sessions</c>.</summary>
    public static WebApplication MapSessions(this WebApplication app)
    {
        app.MapHub<ChatHub>("/hubs/chat");
        app.MapSessionEndpoints();
        return app;
    }
}
