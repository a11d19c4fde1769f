using System.Text.Json;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary>
/// Anthropic's error shape, <c>{"type":"error","error":{"type","message"}}</c>, for everything under
/// <c>/v1/messages</c>. <see cref="OpenAiErrors"/> remains the one writer every refusal goes through; it hands
/// these paths here, so auth, limits, draining and the endpoints' own refusals all come out in this shape.
/// </summary>
internal static class AnthropicErrors
{
    /// <summary>Anthropic's status for "temporarily overloaded": its SDKs retry it.</summary>
    public const int StatusOverloaded = 529;

    public const string InvalidRequestError = "invalid_request_error";
    public const string OverloadedError = "overloaded_error";
    public const string ApiError = "api_error";

    private static readonly PathString MessagesPath = new("/v1/messages");

    public static bool Owns(PathString path) => path.StartsWithSegments(MessagesPath, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Anthropic's status and error type for a refusal. A full queue and a server that cannot serve (loading,
    /// draining) are <c>overloaded_error</c> 529; a per-key limit stays <c>rate_limit_error</c> 429.
    /// </summary>
    public static (int Status, string Type) Classify(int status, string? code) => status switch
    {
        StatusCodes.Status401Unauthorized => (status, "authentication_error"),
        StatusCodes.Status403Forbidden => (status, "permission_error"),
        StatusCodes.Status404NotFound => (status, "not_found_error"),
        StatusCodes.Status413PayloadTooLarge => (status, "request_too_large"),
        StatusCodes.Status429TooManyRequests when code == "queue_full" => (StatusOverloaded, OverloadedError),
        StatusCodes.Status429TooManyRequests => (status, "rate_limit_error"),
        StatusCodes.Status503ServiceUnavailable => (StatusOverloaded, OverloadedError),
        >= 500 => (status, ApiError),
        _ => (status, InvalidRequestError),
    };

    /// <summary>The error type of a generation that failed after its stream started: the same classification as a refusal.</summary>
    public static string StreamErrorType(OpenAiException error) => Classify(error.StatusCode, error.Code).Type;

    public static Task WriteAsync(HttpContext context, int statusCode, string? code, string message, TimeSpan? retryAfter, CancellationToken cancellationToken)
    {
        var (status, type) = Classify(statusCode, code);
        return OpenAiErrors.WriteBodyAsync(context, status, retryAfter, Body(type, message), AnthropicJson.Context.AnthropicErrorResponse, cancellationToken);
    }

    public static AnthropicErrorResponse Body(string type, string message) => new("error", new AnthropicErrorDetail(type, message));

    /// <summary>An error event after the stream started, as Anthropic sends it.</summary>
    public static void WriteEvent(SseWriter sse, string type, string message)
    {
        var writer = sse.BeginEvent("error"u8);
        JsonSerializer.Serialize(writer, Body(type, message), AnthropicJson.Context.AnthropicErrorResponse);
        sse.EndEvent();
    }
}
