using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary>
/// Anthropic's error shape, <c>{"type":"error","error":{"type","message"}}</c>, for everything under
/// <c>/v1/messages</c>: this front end registers <see cref="AnthropicRefusalWriter"/> for the path, so auth, limits,
/// draining and the endpoints' own refusals all come out in this shape.
/// </summary>
internal static class AnthropicErrors
{
    /// <summary>Anthropic's status for "temporarily overloaded": its SDKs retry it.</summary>
    public const int StatusOverloaded = 529;

    public const string Path = "/v1/messages";

    public const string InvalidRequestError = "invalid_request_error";
    public const string OverloadedError = "overloaded_error";
    public const string ApiError = "api_error";

    /// <summary>
    /// Anthropic's status and error type for a refusal. A full queue and a server that cannot serve (loading,
    /// draining) are <c>overloaded_error</c> 529; a per-key limit stays <c>rate_limit_error</c> 429.
    /// </summary>
    public static (int Status, string Type) Classify(RefusalKind kind) => kind switch
    {
        RefusalKind.Unauthorized => (StatusCodes.Status401Unauthorized, "authentication_error"),
        RefusalKind.Forbidden => (StatusCodes.Status403Forbidden, "permission_error"),
        RefusalKind.NotFound => (StatusCodes.Status404NotFound, "not_found_error"),
        RefusalKind.TooLarge => (StatusCodes.Status413PayloadTooLarge, "request_too_large"),
        RefusalKind.RateLimited => (StatusCodes.Status429TooManyRequests, "rate_limit_error"),
        RefusalKind.Overloaded or RefusalKind.Unavailable => (StatusOverloaded, OverloadedError),
        RefusalKind.Internal => (StatusCodes.Status500InternalServerError, ApiError),
        _ => (Refusal.StatusOf(kind), InvalidRequestError),
    };

    /// <summary>The error type of a generation that failed after its stream started: the same classification as a refusal.</summary>
    public static string StreamErrorType(OpenAiException error) => Classify(error.Kind).Type;

    /// <summary>
    /// The message of a refusal: Anthropic names the field at fault as a prefix (<c>max_tokens: ...</c>), having no
    /// field of its own for it.
    /// </summary>
    public static string MessageOf(Refusal refusal) => GenerationException.Prefixed(refusal.Field, refusal.Message);

    public static AnthropicErrorResponse Body(string type, string message) => new("error", new AnthropicErrorDetail(type, message));

    /// <summary>An error event after the stream started, as Anthropic sends it.</summary>
    public static void WriteEvent(SseWriter sse, string type, string message)
    {
        var writer = sse.BeginEvent("error"u8);
        JsonSerializer.Serialize(writer, Body(type, message), AnthropicJson.Context.AnthropicErrorResponse);
        sse.EndEvent();
    }
}

/// <summary>Writes the refusals of the <c>/v1/messages</c> paths in Anthropic's shape.</summary>
internal sealed class AnthropicRefusalWriter : IRefusalWriter
{
    public Task WriteAsync(HttpContext context, Refusal refusal, CancellationToken cancellationToken)
    {
        var (classified, type) = AnthropicErrors.Classify(refusal.Kind);

        // Anthropic's own status for its overloaded type; otherwise the refusal's (it may state one of its own: a 422).
        var status = classified == AnthropicErrors.StatusOverloaded ? classified : refusal.Status;
        var body = AnthropicErrors.Body(type, AnthropicErrors.MessageOf(refusal));
        return ErrorResponse.WriteAsync(context, status, refusal.RetryAfter, body, AnthropicJson.Context.AnthropicErrorResponse, cancellationToken);
    }
}
