using Microsoft.AspNetCore.Authentication;

namespace LlmServer.Operations.Auth;

/// <summary>
/// Asks for a key on the protected path prefixes (the API, sessions, hubs, <c>/props</c>) while the chat page,
/// health and metrics stay open, so the page can load and then ask the user for a key.
/// </summary>
internal sealed class ApiKeyGateMiddleware(RequestDelegate next, ProtectedPaths protectedPaths)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (context.User.Identity?.IsAuthenticated != true && protectedPaths.Contains(context.Request.Path))
        {
            await context.ChallengeAsync(ApiKeyAuthentication.SchemeName);
            return;
        }

        await next(context);
    }
}
