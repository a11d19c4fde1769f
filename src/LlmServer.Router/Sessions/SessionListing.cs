using System.Text.Json;
using LlmServer.Router.Configuration;
using LlmServer.Router.Errors;
using LlmServer.Router.Replicas;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Model;

namespace LlmServer.Router.Sessions;

/// <summary>
/// <c>GET /api/sessions</c> while the replicas keep sessions in stores of their own (SQLite): the router asks one
/// available replica of each store, with the caller's credentials, and answers the lists merged, most recently active
/// first as a replica orders them. A store none of whose replicas is available makes the answer a 503
/// (<c>session_replica_unavailable</c>), never a list that silently lacks sessions, and so does a replica that has not
/// yet reported its store (whether the stores are split is not known); a replica's own refusal (401, 429)
/// is passed on as it is. With one shared store (PostgreSQL) the request is proxied like any other.
/// </summary>
internal sealed partial class SessionListing(
    ReplicaLoadMonitor replicas,
    IHttpClientFactory httpClients,
    IOptionsMonitor<RouterOptions> options,
    ILogger<SessionListing> logger)
{
    public const string HttpClientName = "replica-sessions";

    private const string ListPath = "/api/sessions";

    // What identifies the caller to a replica: its API key (either header) or the cookie a browser sends.
    private static readonly string[] CallerHeaders = ["Authorization", "x-api-key", "Cookie"];

    // What a replica's refusal carries besides its body.
    private static readonly string[] RefusalHeaders = ["Retry-After", "WWW-Authenticate"];

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var request = context.Request;
        if (!HttpMethods.IsGet(request.Method) || !request.Path.Equals(ListPath, StringComparison.OrdinalIgnoreCase))
        {
            await next();
            return;
        }

        // A replica that never said its store may keep sessions no other has: no list can be shown complete.
        if (!replicas.AllReported)
        {
            LogStoresUnknown(logger);
            await RouterErrors.WriteSessionReplicaUnavailableAsync(context, options.CurrentValue.RetryAfter);
            return;
        }

        if (!replicas.StoresSplit)
        {
            await next();
            return;
        }

        var available = context.GetReverseProxyFeature().AvailableDestinations.Where(d => !replicas.IsDraining(d.DestinationId)).ToList();
        var sources = new List<DestinationState>();
        foreach (var store in replicas.ReplicasByStore())
        {
            var source = available.Where(d => store.Contains(d.DestinationId, StringComparer.OrdinalIgnoreCase)).MinBy(d => replicas.LoadOf(d.DestinationId));
            if (source is null)
            {
                LogStoreUnavailable(logger, store.Key);
                await RouterErrors.WriteSessionReplicaUnavailableAsync(context, options.CurrentValue.RetryAfter);
                return;
            }

            sources.Add(source);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(options.CurrentValue.ActivityTimeout);
        var answers = await Task.WhenAll(sources.Select(s => AskAsync(s, context, timeout.Token)));
        try
        {
            if (answers.Any(a => a is null))
            {
                await RouterErrors.WriteSessionReplicaUnavailableAsync(context, options.CurrentValue.RetryAfter);
                return;
            }

            if (answers.FirstOrDefault(a => !a!.IsSuccessStatusCode) is { } refusal)
            {
                await PassOnAsync(context, refusal, timeout.Token);
                return;
            }

            var sessions = new List<JsonElement>();
            foreach (var answer in answers)
            {
                using var list = JsonDocument.Parse(await answer!.Content.ReadAsStreamAsync(timeout.Token));
                sessions.AddRange(list.RootElement.EnumerateArray().Select(s => s.Clone()));
            }

            context.Response.ContentType = "application/json; charset=utf-8";
            context.Response.Headers.CacheControl = "no-store";
            await using var writer = new Utf8JsonWriter(context.Response.Body);
            writer.WriteStartArray();
            foreach (var session in sessions
                .OrderByDescending(s => s.GetProperty("updatedAt").GetDateTimeOffset())
                .ThenByDescending(s => s.GetProperty("createdAt").GetDateTimeOffset())
                .ThenBy(s => s.GetProperty("id").GetString(), StringComparer.Ordinal))
            {
                session.WriteTo(writer);
            }

            writer.WriteEndArray();
            await writer.FlushAsync(timeout.Token);
        }
        finally
        {
            foreach (var answer in answers)
            {
                answer?.Dispose();
            }
        }
    }

    /// <summary>The replica's answer; null when it could not be reached or did not answer in time.</summary>
    private async Task<HttpResponseMessage?> AskAsync(DestinationState replica, HttpContext context, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(ReplicaProxyConfigProvider.DestinationId(replica.Model.Config.Address) + ListPath));
        foreach (var name in CallerHeaders)
        {
            if (context.Request.Headers.TryGetValue(name, out var value))
            {
                request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)value);
            }
        }

        try
        {
            using var client = httpClients.CreateClient(HttpClientName);
            return await client.SendAsync(request, cancellationToken);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !context.RequestAborted.IsCancellationRequested)
        {
            LogReplicaFailed(logger, replica.DestinationId, e.Message);
            return null;
        }
    }

    private static async Task PassOnAsync(HttpContext context, HttpResponseMessage refusal, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = (int)refusal.StatusCode;
        response.ContentType = refusal.Content.Headers.ContentType?.ToString();
        foreach (var name in RefusalHeaders)
        {
            if (refusal.Headers.TryGetValues(name, out var values))
            {
                response.Headers[name] = values.ToArray();
            }
        }

        await refusal.Content.CopyToAsync(response.Body, cancellationToken);
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Sessions cannot be listed: no replica on sessions store {Store} is available")]
    private static partial void LogStoreUnavailable(ILogger logger, string store);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Sessions cannot be listed: a replica has not yet reported its sessions store")]
    private static partial void LogStoresUnknown(ILogger logger);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Replica {Replica} did not list its sessions: {Reason}")]
    private static partial void LogReplicaFailed(ILogger logger, string replica, string reason);
}
