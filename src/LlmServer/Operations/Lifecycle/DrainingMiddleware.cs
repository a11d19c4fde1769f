using LlmServer.Anthropic;
using LlmServer.Errors;
using LlmServer.Operations.Auth;
using LlmServer.ReplicaProtocol;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace LlmServer.Operations.Lifecycle;

/// <summary>
/// While the server drains, API requests get 503 (Anthropic: 529) with <c>Retry-After</c> instead of reaching a front
/// end, and every refusal the drain causes carries <see cref="DrainMarker"/>, so a router sends the request elsewhere.
/// Requests of hub connections opened before the drain (long polling, server-sent events) still pass: their streams
/// run to their end. API requests being answered are counted, so the drain waits for them.
/// </summary>
internal sealed class DrainingMiddleware(RequestDelegate next, GracefulShutdown shutdown, ProtectedPaths protectedPaths, IOptions<ServerOptions> options)
{
    /// <summary>When a refused client may try again: a drained server is gone by then, its replacement or another replica up.</summary>
    private TimeSpan RetryAfter => TimeSpan.FromSeconds(Math.Max(1, options.Value.DrainSeconds));

    private static readonly object GenerationRanKey = new();

    /// <summary>The request's error comes from a generation that ran: a drain's 503 for it gets no marker.</summary>
    public static void NoteGenerationRan(HttpContext context) => context.Items[GenerationRanKey] = true;

    public async Task InvokeAsync(HttpContext context)
    {
        if (!protectedPaths.Contains(context.Request.Path))
        {
            await next(context);
            return;
        }

        // Set when the response starts: the error writers clear headers set before. A request admitted just before
        // the drain began may still be refused by the engine; that refusal is the drain's too. A generation the drain
        // cancelled once it ran is not: sent elsewhere, its work would be done twice.
        context.Response.OnStarting(() =>
        {
            var response = context.Response;
            if (shutdown.IsDraining && response.StatusCode is StatusCodes.Status503ServiceUnavailable or AnthropicErrors.StatusOverloaded
                && !context.Items.ContainsKey(GenerationRanKey))
            {
                response.Headers[DrainMarker.Header] = DrainMarker.Value;
                if (!response.Headers.ContainsKey(HeaderNames.RetryAfter))
                {
                    ErrorResponse.SetRetryAfter(response, RetryAfter);
                }
            }

            return Task.CompletedTask;
        });

        var hub = context.GetEndpoint()?.Metadata.GetMetadata<HubMetadata>() is not null;
        if (shutdown.IsDraining && !(hub && context.Request.Query.ContainsKey("id")))
        {
            OperationsResponses.CloseConnectionAfterResponse(context);
            var refusal = new Refusal(RefusalKind.Unavailable, "The server is shutting down and admits no new requests.", "server_shutting_down")
            {
                RetryAfter = RetryAfter,
            };
            await context.RefuseAsync(refusal, context.RequestAborted);
            return;
        }

        // A hub connection's transport request is counted too: it ends only once its last bytes (a stream's final
        // events) went out, after DrainHubFilter closes the connection, so the host's stop cannot cut them off.
        using (shutdown.TrackWork(context.Abort))
        {
            await next(context);
        }
    }
}
