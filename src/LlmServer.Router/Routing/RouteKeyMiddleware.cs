namespace LlmServer.Router.Routing;

/// <summary>Resolves the request's <see cref="RouteKey"/> once, before YARP balances the load.</summary>
internal static class RouteKeyMiddleware
{
    public const string ItemKey = "LlmServer.Router.RouteKey";

    public static async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        context.Items[ItemKey] = await RouteKeyResolver.ResolveAsync(context, context.RequestAborted);
        await next();
    }
}
