namespace LlmServer.Hosting;

/// <summary>
/// A HEAD request is answered as the GET of its path, without the body (RFC 9110, 9.3.2): monitors and load balancers
/// probe with HEAD, and endpoints are mapped for GET only. Routing matches it as a GET; the endpoint then runs with
/// the request's own method, and Kestrel, which knows the request is a HEAD, sends the headers (Content-Length
/// included) and drops what the endpoint writes.
/// </summary>
internal static class HeadRequests
{
    /// <summary>The start of the pipeline: routing, with a HEAD matched as a GET.</summary>
    public static WebApplication UseRoutingWithHeadAsGet(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            if (HttpMethods.IsHead(context.Request.Method))
            {
                context.Request.Method = HttpMethods.Get;
                context.Items[typeof(HeadRequests)] = true;
            }

            return next(context);
        });
        app.UseRouting();
        app.Use((context, next) =>
        {
            if (context.Items.Remove(typeof(HeadRequests)))
            {
                context.Request.Method = HttpMethods.Head;
            }

            return next(context);
        });
        return app;
    }
}
