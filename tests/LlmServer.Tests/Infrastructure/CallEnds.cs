using System.Collections.Concurrent;
using LlmServer.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// A test hook that tells when the server has finished with a call, after everything the server does at its end:
/// an HTTP request (named "METHOD /path") once the whole middleware pipeline has returned, a <see cref="ChatHub"/>
/// invocation (named "hub METHOD") once SignalR released the hub after its stream. Each name is one call.
/// </summary>
internal sealed class CallEnds
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _ends = new(StringComparer.Ordinal);

    public static void Install(IServiceCollection services)
    {
        services.AddSingleton<CallEnds>();
        services.AddSingleton<IStartupFilter, OutermostMiddleware>();
        services.AddScoped<IHubActivator<ChatHub>, ObservedHubActivator>();
        services.AddOptions<HubOptions>().Configure(hub => hub.AddFilter(new NamingFilter()));
    }

    /// <summary>Completes when the named call has ended (also when it ended before this was asked).</summary>
    public Task Ended(string call) => Entry(call).Task;

    private TaskCompletionSource Entry(string call) =>
        _ends.GetOrAdd(call, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    private sealed class OutermostMiddleware(CallEnds ends) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (HttpContext context, RequestDelegate inner) =>
            {
                try
                {
                    await inner(context);
                }
                finally
                {
                    ends.Entry($"{context.Request.Method} {context.Request.Path}").TrySetResult();
                }
            });
            next(app);
        };
    }

    /// <summary>Tells the invocation's activator (one per invocation scope) which method it runs.</summary>
    private sealed class NamingFilter : IHubFilter
    {
        public ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
        {
            if (invocationContext.ServiceProvider.GetRequiredService<IHubActivator<ChatHub>>() is ObservedHubActivator activator)
            {
                activator.Method = invocationContext.HubMethodName;
            }

            return next(invocationContext);
        }
    }

    /// <summary>SignalR releases the hub after a streaming method's stream has ended and been cleaned up.</summary>
    private sealed class ObservedHubActivator(IServiceProvider services, CallEnds ends) : IHubActivator<ChatHub>
    {
        public string? Method { get; set; }

        public ChatHub Create() => ActivatorUtilities.CreateInstance<ChatHub>(services);

        public void Release(ChatHub hub)
        {
            hub.Dispose();
            if (Method is not null)
            {
                ends.Entry("hub " + Method).TrySetResult();
            }
        }
    }
}
