using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using LlmServer.Router.Replicas;

namespace LlmServer.Router.Errors;

/// <summary>
/// The router's own errors, in the wire format of the API the client called: OpenAI's error body (and its SSE
/// error event), Anthropic's for <c>/v1/messages</c>, the Responses API's <c>error</c> event for <c>/v1/responses</c>,
/// the sessions API's error event for <c>/api/sessions</c>.
/// </summary>
internal static class RouterErrors
{
    public const string NoReplicaCode = "no_healthy_replica";
    public const string ReplicaLostCode = "replica_lost";

    public const string SessionReplicaUnavailableCode = "session_replica_unavailable";
    public const string SessionReplicaInvalidAnswerCode = "session_replica_invalid_answer";
    public const string SessionReplicaRefusedCode = "session_replica_refused";

    /// <summary>503 with <c>Retry-After</c>: no replica is healthy, or none could be reached.</summary>
    public static Task WriteNoReplicaAsync(HttpContext context, TimeSpan retryAfter)
    {
        const string message = "No model server replica is available right now. Retry shortly.";
        if (IsAnthropic(context))
        {
            Begin503(context, retryAfter);
            return context.Response.WriteAsJsonAsync(new AnthropicError("error", new AnthropicErrorDetail("overloaded_error", message)), RouterJson.Default.AnthropicError, cancellationToken: context.RequestAborted);
        }

        return WriteUnavailableAsync(context, retryAfter, message, NoReplicaCode);
    }

    /// <summary>
    /// 503 with <c>Retry-After</c> for a sessions request: no available replica holds the sessions store it needs (the
    /// session's, or for a listing one of the stores). Sessions are not copied between stores, so no other replica can
    /// answer in its place.
    /// </summary>
    public static Task WriteSessionReplicaUnavailableAsync(HttpContext context, TimeSpan retryAfter) => WriteUnavailableAsync(
        context,
        retryAfter,
        "The model server replica that holds these sessions is not available right now (its sessions are in its own store). Retry shortly.",
        SessionReplicaUnavailableCode);

    /// <summary>
    /// 502 for the merged session list: a replica answered it with something that is not a list of sessions
    /// (<paramref name="problem"/>); no list is shown without that replica's sessions.
    /// </summary>
    public static Task WriteSessionReplicaInvalidAnswerAsync(HttpContext context, string replicaName, string problem)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = StatusCodes.Status502BadGateway;
        response.Headers.CacheControl = "no-store";
        var message = $"The sessions cannot be listed: model server replica {replicaName} did not answer with a list of sessions ({problem}).";
        return response.WriteAsJsonAsync(new OpenAiError(new OpenAiErrorDetail(message, "server_error", null, SessionReplicaInvalidAnswerCode)), RouterJson.Default.OpenAiError, cancellationToken: context.RequestAborted);
    }

    /// <summary>
    /// A replica's refusal of the merged session list (<paramref name="status"/>) whose own error cannot be passed on
    /// (<paramref name="problem"/>: too large, cut short): its status, with this error in its place. What else the
    /// refusal carries (<c>Retry-After</c>, <c>WWW-Authenticate</c>) is already on the response.
    /// </summary>
    public static Task WriteSessionReplicaRefusedAsync(HttpContext context, int status, string replicaName, string problem)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.Headers.CacheControl = "no-store";
        var type = status switch
        {
            StatusCodes.Status429TooManyRequests => "rate_limit_error",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        var message = $"The sessions cannot be listed: model server replica {replicaName} refused with HTTP {status}, and its error cannot be passed on ({problem}).";
        return response.WriteAsJsonAsync(new OpenAiError(new OpenAiErrorDetail(message, type, null, SessionReplicaRefusedCode)), RouterJson.Default.OpenAiError, cancellationToken: context.RequestAborted);
    }

    private static Task WriteUnavailableAsync(HttpContext context, TimeSpan retryAfter, string message, string code)
    {
        Begin503(context, retryAfter);
        return context.Response.WriteAsJsonAsync(new OpenAiError(new OpenAiErrorDetail(message, "server_error", null, code)), RouterJson.Default.OpenAiError, cancellationToken: context.RequestAborted);
    }

    private static void Begin503(HttpContext context, TimeSpan retryAfter)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        response.Headers.CacheControl = "no-store";
    }

    /// <summary>
    /// The event that ends a server-sent event stream whose replica went away mid-answer, numbered after the last event
    /// the client got (<paramref name="progress"/>): the sessions stream's next <c>seq</c> (with its <c>id:</c> line),
    /// so a client that drops events it has seen keeps it; the Responses stream's next <c>sequence_number</c>.
    /// </summary>
    public static string StreamFailureEvent(HttpContext context, EventStreamTap? progress)
    {
        const string message = "The model server replica serving this stream stopped before the answer finished. Retry the request.";
        var path = context.Request.Path;
        if (IsAnthropic(context))
        {
            var body = JsonSerializer.Serialize(new AnthropicError("error", new AnthropicErrorDetail("api_error", message)), RouterJson.Default.AnthropicError);
            return $"event: error\ndata: {body}\n\n";
        }

        if (path.StartsWithSegments("/api/sessions"))
        {
            var seq = (progress?.LastId ?? 0) + 1;
            var body = JsonSerializer.Serialize(new SessionErrorEvent(seq, "error", ReplicaLostCode, message), RouterJson.Default.SessionErrorEvent);
            return $"id: {seq.ToString(CultureInfo.InvariantCulture)}\ndata: {body}\n\n";
        }

        if (path.StartsWithSegments("/v1/responses"))
        {
            var body = JsonSerializer.Serialize(new ResponsesErrorEvent("error", ReplicaLostCode, message, null, (progress?.LastSequenceNumber ?? -1) + 1), RouterJson.Default.ResponsesErrorEvent);
            return $"event: error\ndata: {body}\n\n";
        }

        var error = JsonSerializer.Serialize(new OpenAiError(new OpenAiErrorDetail(message, "server_error", null, ReplicaLostCode)), RouterJson.Default.OpenAiError);
        return $"data: {error}\n\ndata: [DONE]\n\n";
    }

    private static bool IsAnthropic(HttpContext context) => context.Request.Path.StartsWithSegments("/v1/messages");
}

internal sealed record OpenAiError(OpenAiErrorDetail Error);

internal sealed record OpenAiErrorDetail(string Message, string Type, string? Param, string? Code);

internal sealed record AnthropicError(string Type, AnthropicErrorDetail Error);

internal sealed record AnthropicErrorDetail(string Type, string Message);

internal sealed record SessionErrorEvent(long Seq, string Type, string Code, string Message);

internal sealed record ResponsesErrorEvent(string Type, string Code, string Message, string? Param, long SequenceNumber);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(OpenAiError))]
[JsonSerializable(typeof(AnthropicError))]
[JsonSerializable(typeof(SessionErrorEvent))]
[JsonSerializable(typeof(ResponsesErrorEvent))]
internal sealed partial class RouterJson : JsonSerializerContext;
