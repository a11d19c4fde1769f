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
            context.Response.Headers.RetryAfter = Math.Max(1, options.Value.DrainSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.Headers.Connection = "close";
            await OpenAiErrorResponse.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "The server is shutting down and admits no new requests.", "server_error", "server_shutting_down", context.RequestAborted);
            return;
        }

        await next(context);
    }
}
