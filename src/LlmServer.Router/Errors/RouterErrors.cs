using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.Router.Errors;

/// <summary>
/// The router's own errors, in the wire format of the API the client called: OpenAI's error body (and its SSE
/// error event), Anthropic's for <c>/v1/messages</c>, the sessions API's error event for <c>/api/sessions</c>.
/// </summary>
internal static class RouterErrors
{
    public const string NoReplicaCode = "no_healthy_replica";
    public const string ReplicaLostCode = "replica_lost";

    /// <summary>503 with <c>Retry-After</c>: no replica is healthy, or none could be reached.</summary>
    public static Task WriteNoReplicaAsync(HttpContext context, TimeSpan retryAfter)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        response.Headers.CacheControl = "no-store";
        const string message = "No model server replica is available right now. Retry shortly.";
        if (IsAnthropic(context))
        {
            return response.WriteAsJsonAsync(new AnthropicError("error", new AnthropicErrorDetail("overloaded_error", message)), RouterJson.Default.AnthropicError, cancellationToken: context.RequestAborted);
        }

        return response.WriteAsJsonAsync(new OpenAiError(new OpenAiErrorDetail(message, "server_error", null, NoReplicaCode)), RouterJson.Default.OpenAiError, cancellationToken: context.RequestAborted);
    }

    /// <summary>The event that ends a server-sent event stream whose replica went away mid-answer.</summary>
    public static string StreamFailureEvent(HttpContext context)
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
            var body = JsonSerializer.Serialize(new SessionErrorEvent(0, "error", ReplicaLostCode, message), RouterJson.Default.SessionErrorEvent);
            return $"data: {body}\n\n";
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

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(OpenAiError))]
[JsonSerializable(typeof(AnthropicError))]
[JsonSerializable(typeof(SessionErrorEvent))]
internal sealed partial class RouterJson : JsonSerializerContext;
