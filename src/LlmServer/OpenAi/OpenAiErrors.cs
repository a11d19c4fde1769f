using LlmServer.Engine.Generation;
using Microsoft.AspNetCore.Http.Features;

namespace LlmServer.OpenAi;

/// <summary>
/// Writes errors in the OpenAI shape, <c>{"error":{"message","type","param","code"}}</c>, with a real HTTP status.
/// Every front end that answers OpenAI clients (this API, API keys, rate limits) writes its errors here.
/// </summary>
internal static class OpenAiErrors
{
    public const string InvalidRequestError = "invalid_request_error";
    public const string ServerError = "server_error";
    public const string RateLimitError = "rate_limit_error";

    /// <summary>
    /// Writes the error as the whole response. Call it only before the response has started; a response that
    /// has started (a stream) reports errors as an SSE event instead.
    /// </summary>
    public static Task WriteAsync(
        HttpContext context,
        int statusCode,
        string type,
        string message,
        string? param = null,
        string? code = null,
        CancellationToken cancellationToken = default) =>
        WriteCoreAsync(context, statusCode, type, message, param, code, retryAfter: null, cancellationToken);

    /// <summary>Writes an <see cref="OpenAiException"/>, with its Retry-After when it has one.</summary>
    public static Task WriteAsync(HttpContext context, OpenAiException error, CancellationToken cancellationToken = default) =>
        WriteCoreAsync(context, error.StatusCode, error.Type, error.Message, error.Param, error.Code, error.RetryAfter, cancellationToken);

    private static Task WriteCoreAsync(
        HttpContext context,
        int statusCode,
        string type,
        string message,
        string? param,
        string? code,
        TimeSpan? retryAfter,
        CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = statusCode;
        if (retryAfter is { } delay)
        {
            response.Headers.RetryAfter = RetryAfterSeconds(delay);
        }

        response.ContentType = "application/json";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var body = new OpenAiErrorResponse(new OpenAiError(message, type, param, code));
        return response.WriteAsJsonAsync(body, OpenAiJson.Context.OpenAiErrorResponse, contentType: "application/json", cancellationToken);
    }

    /// <summary>
    /// Maps an engine refusal onto the OpenAI status, type and code. <paramref name="promptParam"/> names the
    /// field that holds the prompt (<c>messages</c> or <c>prompt</c>) for a prompt over the context.
    /// </summary>
    public static OpenAiException FromGeneration(GenerationException exception, string promptParam = "messages") => exception.Code switch
    {
        GenerationErrorCode.InvalidRequest => new OpenAiException(
            StatusCodes.Status400BadRequest, InvalidRequestError, exception.Message, exception.Parameter),
        GenerationErrorCode.TemplateRefused => new OpenAiException(
            StatusCodes.Status400BadRequest, InvalidRequestError, exception.Message, exception.Parameter, "chat_template_refused"),
        GenerationErrorCode.ContextLengthExceeded => new OpenAiException(
            StatusCodes.Status400BadRequest,
            InvalidRequestError,
            exception.PromptTokens is { } prompt && exception.ContextLength is { } context
                ? $"This model's maximum context length is {context} tokens, but your prompt has {prompt} tokens. Shorten the prompt."
                : exception.Message,
            promptParam,
            "context_length_exceeded"),
        GenerationErrorCode.Overloaded => new OpenAiException(
            StatusCodes.Status429TooManyRequests, RateLimitError, exception.Message, code: "queue_full")
        {
            RetryAfter = exception.RetryAfter ?? TimeSpan.FromSeconds(1),
        },
        GenerationErrorCode.Unavailable => new OpenAiException(
            StatusCodes.Status503ServiceUnavailable, ServerError, exception.Message, code: "unavailable"),
        _ => new OpenAiException(StatusCodes.Status500InternalServerError, ServerError, exception.Message),
    };

    /// <summary>Whole seconds, rounded up, at least one: what Retry-After carries.</summary>
    public static string RetryAfterSeconds(TimeSpan retryAfter) =>
        Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>A request the OpenAI API refuses, carried to the one place that writes it.</summary>
internal sealed class OpenAiException : Exception
{
    public OpenAiException(int statusCode, string type, string message, string? param = null, string? code = null)
        : base(message)
    {
        StatusCode = statusCode;
        Type = type;
        Param = param;
        Code = code;
    }

    public OpenAiException()
        : this(StatusCodes.Status500InternalServerError, OpenAiErrors.ServerError, "The server failed.")
    {
    }

    public OpenAiException(string message)
        : this(StatusCodes.Status400BadRequest, OpenAiErrors.InvalidRequestError, message)
    {
    }

    public OpenAiException(string message, Exception innerException)
        : base(message, innerException)
    {
        StatusCode = StatusCodes.Status500InternalServerError;
        Type = OpenAiErrors.ServerError;
    }

    public int StatusCode { get; }

    public string Type { get; }

    public string? Param { get; }

    public string? Code { get; }

    public TimeSpan? RetryAfter { get; init; }

    /// <summary>A 400 naming the request field at fault.</summary>
    public static OpenAiException InvalidField(string param, string message) =>
        new(StatusCodes.Status400BadRequest, OpenAiErrors.InvalidRequestError, message, param);
}
