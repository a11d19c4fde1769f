using System.Text.Json;
using LlmServer.Router.Configuration;
using LlmServer.Router.Errors;
using LlmServer.Router.Hosting;
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
/// is passed on as it is, and an answer that is not a list of sessions (not JSON, cut short, another shape) makes the
/// answer a 502 (<c>session_replica_invalid_answer</c>) naming the replica and what was wrong. The path matches as the
/// replicas' routing does (a trailing slash too), and the query string goes to every replica. With one shared store
/// (PostgreSQL) the request is proxied like any other.
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
        if (!HttpMethods.IsGet(request.Method) || !IsListPath(request.Path))
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

            var sessions = new List<ListedSession>();
            for (var i = 0; i < answers.Length; i++)
            {
                var (listed, problem) = await ReadListAsync(answers[i]!, context.RequestAborted, timeout.Token);
                if (problem is not null)
                {
                    LogInvalidAnswer(logger, sources[i].DestinationId, problem);
                    await RouterErrors.WriteSessionReplicaInvalidAnswerAsync(context, RouterApplication.ReplicaName(sources[i].DestinationId), problem);
                    return;
                }

                sessions.AddRange(listed);
            }

            context.Response.ContentType = "application/json; charset=utf-8";
            context.Response.Headers.CacheControl = "no-store";
            await using var writer = new Utf8JsonWriter(context.Response.Body);
            writer.WriteStartArray();
            foreach (var session in sessions
                .OrderByDescending(s => s.UpdatedAt)
                .ThenByDescending(s => s.CreatedAt)
                .ThenBy(s => s.Id, StringComparer.Ordinal))
            {
                session.Json.WriteTo(writer);
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

    /// <summary><c>/api/sessions</c> as the replicas route it: the path's case and a trailing slash do not matter.</summary>
    private static bool IsListPath(PathString path) =>
        path.StartsWithSegments(ListPath, StringComparison.OrdinalIgnoreCase, out var rest) && (!rest.HasValue || rest.Value == "/");

    /// <summary>
    /// A replica's list, each session with what it is ordered by; or what is wrong with the answer (a replica that
    /// answers 200 with anything else must not make the merged list a bare 500, nor pass on half a list).
    /// </summary>
    private static async Task<(List<ListedSession> Sessions, string? Problem)> ReadListAsync(HttpResponseMessage answer, CancellationToken requestAborted, CancellationToken cancellationToken)
    {
        JsonDocument list;
        try
        {
            list = await JsonDocument.ParseAsync(await answer.Content.ReadAsStreamAsync(cancellationToken), cancellationToken: cancellationToken);
        }
        catch (JsonException e)
        {
            return ([], $"its answer is not valid JSON ({e.Message})");
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            return ([], $"its answer was cut short ({e.Message})");
        }
        catch (OperationCanceledException) when (!requestAborted.IsCancellationRequested)
        {
            return ([], "its answer did not finish in time");
        }

        using (list)
        {
            if (list.RootElement.ValueKind != JsonValueKind.Array)
            {
                return ([], $"its answer is a JSON {list.RootElement.ValueKind.ToString().ToLowerInvariant()}, not a list of sessions");
            }

            var sessions = new List<ListedSession>();
            foreach (var (session, index) in list.RootElement.EnumerateArray().Select((s, i) => (s, i)))
            {
                if (session.ValueKind != JsonValueKind.Object ||
                    !session.TryGetProperty("id", out var id) || id.ValueKind != JsonValueKind.String ||
                    !TryGetTime(session, "createdAt", out var createdAt) || !TryGetTime(session, "updatedAt", out var updatedAt))
                {
                    return ([], $"item {index} of its list is not a session (an object with a string id and createdAt and updatedAt times)");
                }

                sessions.Add(new ListedSession(session.Clone(), id.GetString()!, createdAt, updatedAt));
            }

            return (sessions, null);
        }
    }

    private static bool TryGetTime(JsonElement session, string name, out DateTimeOffset time)
    {
        time = default;
        return session.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.TryGetDateTimeOffset(out time);
    }

    /// <summary>The replica's answer; null when it could not be reached or did not answer in time.</summary>
    private async Task<HttpResponseMessage?> AskAsync(DestinationState replica, HttpContext context, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(ReplicaProxyConfigProvider.DestinationId(replica.Model.Config.Address) + ListPath + context.Request.QueryString));
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
            // The body is read (and its faults told apart) with the list.
            return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
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

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "Sessions cannot be listed: replica {Replica} did not answer with a list of sessions: {Problem}")]
    private static partial void LogInvalidAnswer(ILogger logger, string replica, string problem);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Replica {Replica} did not list its sessions: {Reason}")]
    private static partial void LogReplicaFailed(ILogger logger, string replica, string reason);
}

/// <summary>One session of a replica's list, and what the merged list is ordered by.</summary>
internal sealed record ListedSession(JsonElement Json, string Id, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);
