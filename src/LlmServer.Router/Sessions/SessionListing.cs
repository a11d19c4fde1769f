using System.Buffers;
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
/// yet reported its store (whether the stores are split is not known) or that has not answered, all of it, within
/// <see cref="RouterOptions.SessionListTimeout"/>; a replica's own refusal (401, 429) is passed on as it is, and an
/// answer that is not a list of sessions (not JSON, cut short, larger than <see cref="RouterOptions.SessionListMaxBytes"/>,
/// another shape) makes the answer a 502 (<c>session_replica_invalid_answer</c>) naming the replica and what was wrong. The path matches as the
/// replicas' routing does (a trailing slash too), and the query string goes to every replica. With one shared store
/// (PostgreSQL) the request is proxied like any other.
/// </summary>
internal sealed partial class SessionListing(
    ReplicaLoadMonitor replicas,
    IHttpClientFactory httpClients,
    IOptionsMonitor<RouterOptions> options,
    TimeProvider timeProvider,
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

        var settings = options.CurrentValue;
        using var deadline = new CancellationTokenSource(settings.SessionListTimeout, timeProvider);
        using var asking = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, deadline.Token);
        var answers = await Task.WhenAll(sources.Select(s => AskAsync(s, context, settings, asking.Token)));
        if (answers.Any(a => a is null))
        {
            await RouterErrors.WriteSessionReplicaUnavailableAsync(context, settings.RetryAfter);
            return;
        }

        if (answers.FirstOrDefault(a => a!.Problem is null && a.Status is < 200 or > 299) is { } refusal)
        {
            await PassOnAsync(context, refusal);
            return;
        }

        var sessions = new List<ListedSession>();
        for (var i = 0; i < answers.Length; i++)
        {
            if ((answers[i]!.Problem ?? ReadList(answers[i]!.Body, sessions)) is { } problem)
            {
                LogInvalidAnswer(logger, sources[i].DestinationId, problem);
                await RouterErrors.WriteSessionReplicaInvalidAnswerAsync(context, RouterApplication.ReplicaName(sources[i].DestinationId), problem);
                return;
            }
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
        await writer.FlushAsync(context.RequestAborted);
    }

    /// <summary><c>/api/sessions</c> as the replicas route it: the path's case and a trailing slash do not matter.</summary>
    private static bool IsListPath(PathString path) =>
        path.StartsWithSegments(ListPath, StringComparison.OrdinalIgnoreCase, out var rest) && (!rest.HasValue || rest.Value == "/");

    /// <summary>
    /// Adds a replica's list to <paramref name="sessions"/>, each session with what it is ordered by; or says what is
    /// wrong with the answer (a replica that answers 200 with anything else must not make the merged list a bare 500,
    /// nor pass on half a list).
    /// </summary>
    private static string? ReadList(ReadOnlyMemory<byte> body, List<ListedSession> sessions)
    {
        JsonDocument list;
        try
        {
            list = JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            return $"its answer is not valid JSON ({e.Message})";
        }

        using (list)
        {
            if (list.RootElement.ValueKind != JsonValueKind.Array)
            {
                return $"its answer is a JSON {list.RootElement.ValueKind.ToString().ToLowerInvariant()}, not a list of sessions";
            }

            foreach (var (session, index) in list.RootElement.EnumerateArray().Select((s, i) => (s, i)))
            {
                if (session.ValueKind != JsonValueKind.Object ||
                    !session.TryGetProperty("id", out var id) || id.ValueKind != JsonValueKind.String ||
                    !TryGetTime(session, "createdAt", out var createdAt) || !TryGetTime(session, "updatedAt", out var updatedAt))
                {
                    return $"item {index} of its list is not a session (an object with a string id and createdAt and updatedAt times)";
                }

                sessions.Add(new ListedSession(session.Clone(), id.GetString()!, createdAt, updatedAt));
            }

            return null;
        }
    }

    private static bool TryGetTime(JsonElement session, string name, out DateTimeOffset time)
    {
        time = default;
        return session.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.TryGetDateTimeOffset(out time);
    }

    /// <summary>
    /// The replica's answer, its body read whole (the response is let go of here, whatever happens to the listing);
    /// null when it could not be reached or did not answer, all of it, before the listing's deadline.
    /// </summary>
    private async Task<ReplicaAnswer?> AskAsync(DestinationState replica, HttpContext context, RouterOptions settings, CancellationToken cancellationToken)
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
            using var answer = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            var (body, problem) = await ReadBodyAsync(answer.Content, settings.SessionListMaxBytes, cancellationToken);
            var headers = new List<KeyValuePair<string, string[]>>();
            foreach (var name in RefusalHeaders)
            {
                if (answer.Headers.TryGetValues(name, out var values))
                {
                    headers.Add(new(name, [.. values]));
                }
            }

            return new ReplicaAnswer((int)answer.StatusCode, answer.Content.Headers.ContentType?.ToString(), headers, body, problem);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !context.RequestAborted.IsCancellationRequested)
        {
            LogReplicaFailed(logger, replica.DestinationId, e is OperationCanceledException ? $"no answer within {settings.SessionListTimeout} (Router:SessionListTimeout)" : e.Message);
            return null;
        }
    }

    /// <summary>The body whole; or what is wrong with it: larger than <paramref name="maxBytes"/>, or cut short.</summary>
    private static async Task<(ReadOnlyMemory<byte> Body, string? Problem)> ReadBodyAsync(HttpContent content, int maxBytes, CancellationToken cancellationToken)
    {
        var tooLarge = $"its answer is larger than the router's limit of {maxBytes} bytes";
        if (content.Headers.ContentLength > maxBytes)
        {
            return (default, tooLarge);
        }

        try
        {
            await using var stream = await content.ReadAsStreamAsync(cancellationToken);
            var body = new ArrayBufferWriter<byte>();
            while (true)
            {
                var read = await stream.ReadAsync(body.GetMemory(16 * 1024), cancellationToken);
                if (read == 0)
                {
                    return (body.WrittenMemory, null);
                }

                if (body.WrittenCount + (long)read > maxBytes)
                {
                    return (default, tooLarge);
                }

                body.Advance(read);
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            return (default, $"its answer was cut short ({e.Message})");
        }
    }

    private static async Task PassOnAsync(HttpContext context, ReplicaAnswer refusal)
    {
        var response = context.Response;
        response.StatusCode = refusal.Status;
        response.ContentType = refusal.ContentType;
        foreach (var (name, values) in refusal.Headers)
        {
            response.Headers[name] = values;
        }

        await response.Body.WriteAsync(refusal.Body, context.RequestAborted);
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

/// <summary>
/// A replica's answer to the listing, its body read whole; <see cref="Problem"/> says why the body cannot be used (too
/// large, cut short), and <see cref="Headers"/> holds what a refusal carries besides its body.
/// </summary>
internal sealed record ReplicaAnswer(int Status, string? ContentType, IReadOnlyList<KeyValuePair<string, string[]>> Headers, ReadOnlyMemory<byte> Body, string? Problem);

/// <summary>One session of a replica's list, and what the merged list is ordered by.</summary>
internal sealed record ListedSession(JsonElement Json, string Id, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);
