namespace LlmServer.Operations;

internal static class OperationsResponses
{
    /// <summary>
    /// Asks the client to drop the connection after a refusal (its body may be unread, or the server is going away).
    /// Set when the response starts, because the error writer clears headers set before it.
    /// </summary>
    public static void CloseConnectionAfterResponse(HttpContext context) =>
        context.Response.OnStarting(() =>
        {
            context.Response.Headers.Connection = "close";
            return Task.CompletedTask;
        });
}
