using System.Text.Json;
using System.Text.Unicode;
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
/// <see cref="RouterOptions.SessionListTimeout"/>; the first replica that fails so settles the answer, and the others
/// are let go of at once. A replica's own refusal (401, 429) is passed on as it is, or, when its error cannot be (larger
/// than <see cref="RouterOptions.SessionListMaxBytes"/>, cut short), with its status and the router's own error
/// (<c>session_replica_refused</c>). An answer that is not a list of sessions (not JSON, cut short, larger than the cap,
/// another shape) makes the answer a 502 (<c>session_replica_invalid_answer</c>) naming the replica and what was wrong.
/// The path matches as the replicas' routing does (a trailing slash too), and the query string goes to every replica.
/// With one shared store (PostgreSQL) the request is proxied like any other.
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

    // A few dozen sessions (a couple of hundred bytes each, more with a system prompt) fit without growing, and a
    // replica that tells a large length and then stalls holds no more than this until its bytes come.
    private const int InitialBodyBytes = 16 * 1024;

    // Kestrel's response buffer (MaxResponseBufferSize): a flush of this much goes out without waiting, and what the
    // writer holds stays small beside the lists.
    private const int FlushBytes = 64 * 1024;

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
        var asks = sources.Select(s => AskAsync(s, context, settings, deadline.Token, asking.Token)).ToList();
        var unavailable = false;
        try
        {
            // One replica without an answer makes the list unavailable whatever the others answer: no waiting for them.
            await foreach (var ask in Task.WhenEach(asks))
            {
                if (await ask is null)
                {
                    unavailable = true;
                    break;
                }
            }
        }
        finally
        {
            // Each ask reads the request's headers and token and holds a response: all of them end before the request does.
            await asking.CancelAsync();
            await ((Task)Task.WhenAll(asks)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        if (unavailable)
        {
            await RouterErrors.WriteSessionReplicaUnavailableAsync(context, settings.RetryAfter);
            return;
        }

        var answers = await Task.WhenAll(asks);
        for (var i = 0; i < answers.Length; i++)
        {
            if (answers[i]!.Status is < 200 or > 299)
            {
                await PassOnAsync(context, answers[i]!, sources[i].DestinationId);
                return;
            }
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
            // ReadList read it through: it is valid JSON.
            writer.WriteRawValue(session.Json.Span, skipInputValidation: true);

            // The writer holds what it has not flushed: flushed as it goes, the merged list is never a second copy of the lists.
            if (writer.BytesPending >= FlushBytes)
            {
                await writer.FlushAsync(context.RequestAborted);
            }
        }

        writer.WriteEndArray();
        await writer.FlushAsync(context.RequestAborted);
    }

    /// <summary><c>/api/sessions</c> as the replicas route it: the path's case and a trailing slash do not matter.</summary>
    private static bool IsListPath(PathString path) =>
        path.StartsWithSegments(ListPath, StringComparison.OrdinalIgnoreCase, out var rest) && (!rest.HasValue || rest.Value == "/");

    /// <summary>
    /// Adds a replica's list to <paramref name="sessions"/>, each session as a slice of <paramref name="body"/> with what
    /// it is ordered by; or says what is wrong with the answer (a replica that answers 200 with anything else must not
    /// make the merged list a bare 500, nor pass on half a list). Read with a reader, not a document: a document would
    /// hold an index about as large as the list, and a copy of each session besides.
    /// </summary>
    private static string? ReadList(ReadOnlyMemory<byte> body, List<ListedSession> sessions)
    {
        // Whether it is JSON at all first, so that a broken answer says so whatever its first items are. The reader
        // leaves UTF-8 to whoever transcodes a string, and the merged list copies each session's bytes as they are.
        if (!Utf8.IsValid(body.Span))
        {
            return "its answer is not valid JSON (it is not UTF-8)";
        }

        var reader = new Utf8JsonReader(body.Span);
        try
        {
            reader.Read();
            reader.Skip();
            reader.Read();
        }
        catch (JsonException e)
        {
            return $"its answer is not valid JSON ({e.Message})";
        }

        reader = new Utf8JsonReader(body.Span);
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            return $"its answer is a JSON {KindOf(reader.TokenType)}, not a list of sessions";
        }

        for (var index = 0; reader.Read() && reader.TokenType != JsonTokenType.EndArray; index++)
        {
            if (ReadSession(ref reader, body) is not { } session)
            {
                return $"item {index} of its list is not a session (an object with a string id and createdAt and updatedAt times)";
            }

            sessions.Add(session);
        }

        return null;
    }

    /// <summary>
    /// The session the reader is on, read to its end: an object with a string <c>id</c> and <c>createdAt</c> and
    /// <c>updatedAt</c> times (a property named twice counts as its last value says); null when it is not one.
    /// </summary>
    private static ListedSession? ReadSession(ref Utf8JsonReader reader, ReadOnlyMemory<byte> body)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return null;
        }

        var start = (int)reader.TokenStartIndex;
        string? id = null;
        DateTimeOffset? createdAt = null;
        DateTimeOffset? updatedAt = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.TokenType == JsonTokenType.String ? TextOf(ref reader) : null;
            }
            else if (reader.ValueTextEquals("createdAt"u8))
            {
                reader.Read();
                createdAt = TimeOf(ref reader);
            }
            else if (reader.ValueTextEquals("updatedAt"u8))
            {
                reader.Read();
                updatedAt = TimeOf(ref reader);
            }
            else
            {
                reader.Read();
            }

            // Past the value's nested content, if it has any.
            reader.Skip();
        }

        return id is not null && createdAt is { } created && updatedAt is { } updated
            ? new ListedSession(body[start..(int)reader.BytesConsumed], id, created, updated)
            : null;
    }

    /// <summary>
    /// The string the reader is on as text; null when it is none (an escaped surrogate without its pair), which the
    /// reader finds only when it transcodes it.
    /// </summary>
    private static string? TextOf(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private static DateTimeOffset? TimeOf(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.String && reader.TryGetDateTimeOffset(out var time) ? time : null;

    /// <summary>A JSON value's kind by its first token, as <see cref="JsonValueKind"/> names it.</summary>
    private static string KindOf(JsonTokenType first) => first switch
    {
        JsonTokenType.StartObject => "object",
        JsonTokenType.String => "string",
        JsonTokenType.Number => "number",
        JsonTokenType.True => "true",
        JsonTokenType.False => "false",
        _ => "null",
    };

    /// <summary>
    /// The replica's answer, its body read whole (the response is let go of here, whatever happens to the listing);
    /// null when it could not be reached or did not answer, all of it, before the listing's <paramref name="deadline"/>,
    /// or when the listing gave up on it (another replica failed: <paramref name="cancellationToken"/>).
    /// </summary>
    private async Task<ReplicaAnswer?> AskAsync(DestinationState replica, HttpContext context, RouterOptions settings, CancellationToken deadline, CancellationToken cancellationToken)
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
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException && !context.RequestAborted.IsCancellationRequested)
        {
            // One let go of because another replica failed has not failed itself.
            if (deadline.IsCancellationRequested || !cancellationToken.IsCancellationRequested)
            {
                LogReplicaFailed(logger, replica.DestinationId, deadline.IsCancellationRequested ? $"no answer within {settings.SessionListTimeout} (Router:SessionListTimeout)" : e.Message);
            }

            return null;
        }
    }

    /// <summary>
    /// The body whole, in one buffer grown as it comes (doubled, never past its told length or the cap; while it grows,
    /// the old and the new are held together for a moment: under twice <paramref name="maxBytes"/>); or what is wrong
    /// with it: larger than <paramref name="maxBytes"/>, or cut short. A told length is not allocated before its bytes
    /// come: a replica that tells a large one and stalls would hold that much until the listing's deadline.
    /// </summary>
    private static async Task<(ReadOnlyMemory<byte> Body, string? Problem)> ReadBodyAsync(HttpContent content, int maxBytes, CancellationToken cancellationToken)
    {
        var tooLarge = $"its answer is larger than the router's limit of {maxBytes} bytes";
        var told = content.Headers.ContentLength;
        if (told > maxBytes)
        {
            return (default, tooLarge);
        }

        try
        {
            await using var stream = await content.ReadAsStreamAsync(cancellationToken);
            var limit = (int)(told ?? maxBytes);
            var buffer = new byte[Math.Min(limit, InitialBodyBytes)];
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length == limit)
                    {
                        // Full: one byte more is more than the cap (the handler itself holds a told length to its word).
                        if (await stream.ReadAsync(new byte[1], cancellationToken) != 0)
                        {
                            return (default, tooLarge);
                        }

                        return (buffer, null);
                    }

                    Array.Resize(ref buffer, (int)Math.Min(2L * buffer.Length, limit));
                }

                var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (read == 0)
                {
                    return (buffer.AsMemory(0, length), null);
                }

                length += read;
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
        {
            return (default, $"its answer was cut short ({e.Message})");
        }
    }

    /// <summary>
    /// A replica's refusal, with its status and what it carries besides its body: its error as it is, or the router's
    /// own when it cannot be passed on (<see cref="ReplicaAnswer.Problem"/>).
    /// </summary>
    private async Task PassOnAsync(HttpContext context, ReplicaAnswer refusal, string replica)
    {
        var response = context.Response;
        foreach (var (name, values) in refusal.Headers)
        {
            response.Headers[name] = values;
        }

        if (refusal.Problem is { } problem)
        {
            LogRefusalUnreadable(logger, replica, refusal.Status, problem);
            await RouterErrors.WriteSessionReplicaRefusedAsync(context, refusal.Status, RouterApplication.ReplicaName(replica), problem);
            return;
        }

        response.StatusCode = refusal.Status;
        response.ContentType = refusal.ContentType;
        await response.Body.WriteAsync(refusal.Body, context.RequestAborted);
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Sessions cannot be listed: no replica on sessions store {Store} is available")]
    private static partial void LogStoreUnavailable(ILogger logger, string store);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Sessions cannot be listed: a replica has not yet reported its sessions store")]
    private static partial void LogStoresUnknown(ILogger logger);

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "Sessions cannot be listed: replica {Replica} did not answer with a list of sessions: {Problem}")]
    private static partial void LogInvalidAnswer(ILogger logger, string replica, string problem);

    [LoggerMessage(EventId = 24, Level = LogLevel.Warning, Message = "Sessions cannot be listed: replica {Replica} refused with HTTP {Status} and an error that cannot be passed on: {Problem}")]
    private static partial void LogRefusalUnreadable(ILogger logger, string replica, int status, string problem);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Replica {Replica} did not list its sessions: {Reason}")]
    private static partial void LogReplicaFailed(ILogger logger, string replica, string reason);
}

/// <summary>
/// A replica's answer to the listing, its body read whole; <see cref="Problem"/> says why the body cannot be used (too
/// large, cut short), and <see cref="Headers"/> holds what a refusal carries besides its body.
/// </summary>
internal sealed record ReplicaAnswer(int Status, string? ContentType, IReadOnlyList<KeyValuePair<string, string[]>> Headers, ReadOnlyMemory<byte> Body, string? Problem);

/// <summary>One session of a replica's list (its JSON, a slice of the replica's answer), and what the merged list is ordered by.</summary>
internal sealed record ListedSession(ReadOnlyMemory<byte> Json, string Id, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);
