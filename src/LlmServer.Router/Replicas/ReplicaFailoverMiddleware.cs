using System.Net.Sockets;
using System.Text;
using LlmServer.ReplicaProtocol;
using LlmServer.Router.Configuration;
using LlmServer.Router.Errors;
using LlmServer.Router.Routing;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.Transforms;

namespace LlmServer.Router.Replicas;

/// <summary>
/// Around each proxied request: a request that never reached its replica (connection refused), or that a draining
/// replica refused (<see cref="DrainMarker"/>) before answering anything, is sent to the next healthy one; with none
/// left, the client gets the router's 503. Draining replicas get no new requests (a session moves to another). A
/// session's request goes only to the replicas on its sessions store. A server-sent event stream whose replica dies mid-answer ends with an error event in the API's format instead of a
/// cut connection.
/// </summary>
internal sealed partial class ReplicaFailoverMiddleware(IOptionsMonitor<RouterOptions> options, ReplicaLoadMonitor replicas, ILogger<ReplicaFailoverMiddleware> logger)
{
    /// <summary>Set on a request whose replica refused it as draining: the replica that did.</summary>
    private sealed record DrainRefusal(string Replica, bool Held);

    /// <summary>
    /// The response transform that reads <see cref="DrainMarker"/> (the router's one reader of it): a draining
    /// replica's refusal is held back (headers not sent, body dropped) when the request can be sent again, so
    /// <see cref="InvokeAsync"/> tries another replica; otherwise it goes to the client as it is.
    /// </summary>
    public static ValueTask HoldDrainRefusal(ResponseTransformContext context)
    {
        var http = context.HttpContext;
        if (context.ProxyResponse is { } response && response.Headers.Contains(DrainMarker.Header) &&
            http.GetReverseProxyFeature().ProxiedDestination is { } replica)
        {
            var held = !http.Response.HasStarted && CanSendAgain(http);
            context.SuppressResponseBody = held;
            http.Features.Set(new DrainRefusal(replica.DestinationId, held));
        }

        return ValueTask.CompletedTask;
    }

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var proxy = context.GetReverseProxyFeature();
        var candidates = proxy.AvailableDestinations.Where(d => !replicas.IsDraining(d.DestinationId)).ToList();

        // A session lives in the store its id names: only the replicas on that store can serve it. A store no replica
        // named while some replica never said its own may be that one's: the session is unavailable, not missing.
        // Once every replica has spoken, an unknown store (or an id from before stores had ids) leaves the choice open.
        var namedStore = context.Items[RouteKeyMiddleware.ItemKey] is RouteKey { SessionId: { } session } ? SessionStoreIds.StoreOf(session) : null;
        if (namedStore is not null && !replicas.IsKnownStore(namedStore) && !replicas.AllReported)
        {
            LogNoSessionReplica(logger, namedStore, context.Request.Path);
            await RouterErrors.WriteSessionReplicaUnavailableAsync(context, options.CurrentValue.RetryAfter);
            return;
        }

        var sessionStore = namedStore is not null && replicas.IsKnownStore(namedStore) ? namedStore : null;
        if (sessionStore is not null)
        {
            candidates.RemoveAll(d => replicas.StoreOf(d.DestinationId) != sessionStore);
        }
        var request = context.Request;
        if (request.ContentLength is > 0 and <= RouteKeyResolver.MaxKeyedBodyBytes && !request.Body.CanSeek)
        {
            request.EnableBuffering(bufferThreshold: 64 * 1024, bufferLimit: RouteKeyResolver.MaxKeyedBodyBytes);
        }

        var lifetime = new DeferredAbortFeature(context);
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        // Only the streams whose events are numbered need their last number.
        var body = context.Response.Body;
        var progress = request.Path.StartsWithSegments("/api/sessions") || request.Path.StartsWithSegments("/v1/responses") ? new EventStreamTap(body) : null;
        context.Response.Body = progress ?? body;
        try
        {
            await ProxyAsync(context, next, proxy, candidates, sessionStore, lifetime, progress);
        }
        finally
        {
            context.Response.Body = body;
        }
    }

    private async Task ProxyAsync(
        HttpContext context, Func<Task> next, IReverseProxyFeature proxy, List<DestinationState> candidates, string? sessionStore, DeferredAbortFeature lifetime, EventStreamTap? progress)
    {
        var request = context.Request;
        while (true)
        {
            if (candidates.Count == 0 && sessionStore is not null)
            {
                LogNoSessionReplica(logger, sessionStore, request.Path);
                await RouterErrors.WriteSessionReplicaUnavailableAsync(context, options.CurrentValue.RetryAfter);
                return;
            }

            if (candidates.Count == 0)
            {
                LogNoReplica(logger, request.Path);
                await RouterErrors.WriteNoReplicaAsync(context, options.CurrentValue.RetryAfter);
                return;
            }

            proxy.AvailableDestinations = candidates;
            await next();
            if (context.Features.Get<DrainRefusal>() is { } refusal)
            {
                context.Features.Set<DrainRefusal>(null);
                replicas.MarkDraining(refusal.Replica);
                if (!refusal.Held)
                {
                    return;
                }

                LogRetryingDrained(logger, refusal.Replica, request.Path);
                candidates.RemoveAll(d => d.DestinationId == refusal.Replica);
                SendAgain(context);
                continue;
            }

            var error = context.Features.Get<IForwarderErrorFeature>();
            if (error is null)
            {
                return;
            }

            if (lifetime.AbortDeferred)
            {
                LogStreamLost(logger, proxy.ProxiedDestination?.DestinationId, request.Path);
                await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(RouterErrors.StreamFailureEvent(context, progress)), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                return;
            }

            var failed = proxy.ProxiedDestination;
            if (context.Response.HasStarted || failed is null || !NeverReached(error) || (request.ContentLength is > 0 && !request.Body.CanSeek))
            {
                return;
            }

            LogRetrying(logger, failed.DestinationId, request.Path);
            candidates.Remove(failed);
            context.Features.Set<IForwarderErrorFeature>(null);
            SendAgain(context);
        }
    }

    private static void SendAgain(HttpContext context)
    {
        context.Response.Clear();
        if (context.Request.Body.CanSeek)
        {
            context.Request.Body.Position = 0;
        }
    }

    /// <summary>
    /// True when the request can be sent once more after a replica answered it: it has no body, or its body was
    /// buffered (a body streamed through once is gone). The server says whether a body may follow: over HTTP/2 and
    /// HTTP/3 a streamed body has neither Content-Length nor Transfer-Encoding.
    /// </summary>
    private static bool CanSendAgain(HttpContext context) =>
        context.Request.Body.CanSeek || context.Request.ContentLength == 0 ||
        context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false;

    /// <summary>
    /// True when the connection itself could not be made, so the replica never saw the request and a retry is safe
    /// (a connection reset after sending is not: the replica may have started the work).
    /// </summary>
    private static bool NeverReached(IForwarderErrorFeature error) =>
        error.Error == ForwarderError.Request && error.Exception is HttpRequestException e &&
        (e.HttpRequestError == HttpRequestError.NameResolutionError ||
         e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable });

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Replica {Replica} could not be reached for {Path}; trying the next one")]
    private static partial void LogRetrying(ILogger logger, string replica, string path);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "No replica could serve {Path}")]
    private static partial void LogNoReplica(ILogger logger, string path);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Replica {Replica} stopped in the middle of a stream for {Path}; the stream ends with an error event")]
    private static partial void LogStreamLost(ILogger logger, string? replica, string path);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "No replica on sessions store {Store} is available for {Path}")]
    private static partial void LogNoSessionReplica(ILogger logger, string store, string path);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Replica {Replica} drains and refused {Path}; trying the next one")]
    private static partial void LogRetryingDrained(ILogger logger, string replica, string path);

    /// <summary>
    /// YARP aborts the client's connection when the replica's response body fails after it started; for an
    /// event stream this holds that abort back so the stream can end with an error event the client can read.
    /// </summary>
    private sealed class DeferredAbortFeature(HttpContext context) : IHttpRequestLifetimeFeature
    {
        private readonly IHttpRequestLifetimeFeature _inner = context.Features.GetRequiredFeature<IHttpRequestLifetimeFeature>();

        public bool AbortDeferred { get; private set; }

        public CancellationToken RequestAborted
        {
            get => _inner.RequestAborted;
            set => _inner.RequestAborted = value;
        }

        public void Abort()
        {
            var error = context.Features.Get<IForwarderErrorFeature>();
            var eventStream = context.Response.ContentType?.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase) == true;
            if (error?.Error == ForwarderError.ResponseBodyDestination && eventStream && !_inner.RequestAborted.IsCancellationRequested)
            {
                AbortDeferred = true;
                return;
            }

            _inner.Abort();
        }
    }
}
