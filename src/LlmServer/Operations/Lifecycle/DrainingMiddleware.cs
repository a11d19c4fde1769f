using LlmServer.Errors;
using LlmServer.Operations.Auth;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Lifecycle;

/// <summary>While the server drains, API requests get 503 with <c>Retry-After</c> instead of reaching a front end.</summary>
internal sealed class DrainingMiddleware(RequestDelegate next, GracefulShutdown shutdown, ProtectedPaths protectedPaths, IOptions<ServerOptions> options)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (shutdown.IsDraining && protectedPaths.Contains(context.Request.Path))
        {
            OperationsResponses.CloseConnectionAfterResponse(context);
            var refusal = new Refusal(RefusalKind.Unavailable, "The server is shutting down and admits no new requests.", "server_shutting_down")
            {
                RetryAfter = TimeSpan.FromSeconds(Math.Max(1, options.Value.DrainSeconds)),
            };
            await context.RefuseAsync(refusal, context.RequestAborted);
            return;
        }

        await next(context);
    }
}
