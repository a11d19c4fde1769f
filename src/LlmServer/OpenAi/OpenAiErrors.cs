using LlmServer.Engine.Generation;
using LlmServer.Anthropic;
using System.Text.Json.Serialization.Metadata;
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
        // Anthropic clients read their own error shape; the status, message and Retry-After are the same facts.
        if (AnthropicErrors.Owns(context.Request.Path))
        {
            return AnthropicErrors.WriteAsync(context, statusCode, code, message, retryAfter, cancellationToken);
        }

        var body = new OpenAiErrorResponse(new OpenAiError(message, type, param, code));
        return WriteBodyAsync(context, statusCode, retryAfter, body, OpenAiJson.Context.OpenAiErrorResponse, cancellationToken);
    }

    /// <summary>
    /// Writes an error body of any API's shape as the whole response: the status, <c>Retry-After</c> (whole seconds)
    /// when there is one, and the JSON, unbuffered.
    /// </summary>
    public static Task WriteBodyAsync<T>(HttpContext context, int statusCode, TimeSpan? retryAfter, T body, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = statusCode;
        if (retryAfter is { } delay)
        {
            response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(delay.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        return response.WriteAsJsonAsync(body, typeInfo, contentType: "application/json", cancellationToken);
    }

    /// <summary>
    /// An engine refusal (thrown before anything streamed) in OpenAI terms. <paramref name="promptParam"/> names the
    /// field that holds the prompt (<c>messages</c> or <c>prompt</c>) for a prompt over the context.
    /// </summary>
    public static OpenAiException FromGeneration(GenerationException exception, string promptParam = "messages")
    {
        if (exception.Code != GenerationErrorCode.ContextLengthExceeded)
        {
            return FromEngine(exception.Code, exception.Message, exception.Parameter, exception.RetryAfter);
        }

        var message = exception.PromptTokens is { } prompt && exception.ContextLength is { } context
            ? $"This model's maximum context length is {context} tokens, but your prompt has {prompt} tokens. Shorten the prompt."
            : exception.Message;
        return FromEngine(exception.Code, message, promptParam, retryAfter: null);
    }

    /// <summary>A choice that was cancelled or failed after its stream started, in OpenAI terms.</summary>
    public static OpenAiException FromCompletion(GenerationCompleted completion)
    {
        if (completion.FinishReason == FinishReason.Cancelled)
        {
            return new OpenAiException(
                StatusCodes.Status503ServiceUnavailable,
                ServerError,
                "The generation was cancelled by the server (it is shutting down or draining).",
                code: "cancelled");
        }

        var error = completion.Error ?? new GenerationError(GenerationErrorCode.Internal, "The generation failed.");
        return FromEngine(error.Code, error.Message, param: null, retryAfter: null);
    }

    /// <summary>What a stream reports when relaying it broke (the status line is long gone).</summary>
    public static OpenAiException StreamBroke() =>
        new(StatusCodes.Status500InternalServerError, ServerError, "The server had an error while streaming the response.");

    /// <summary>
    /// The one mapping of an engine fault onto a status, type and code. Every front end starts from it: the OpenAI
    /// and Responses APIs write it as it is, the Anthropic API classifies its status and code into its own types.
    /// </summary>
    private static OpenAiException FromEngine(GenerationErrorCode code, string message, string? param, TimeSpan? retryAfter) => code switch
    {
        GenerationErrorCode.InvalidRequest => new(StatusCodes.Status400BadRequest, InvalidRequestError, message, param),
        GenerationErrorCode.TemplateRefused => new(StatusCodes.Status400BadRequest, InvalidRequestError, message, param, "chat_template_refused"),
        GenerationErrorCode.ContextLengthExceeded => new(StatusCodes.Status400BadRequest, InvalidRequestError, message, param, "context_length_exceeded"),
        GenerationErrorCode.Overloaded => new(StatusCodes.Status429TooManyRequests, RateLimitError, message, code: "queue_full")
        {
            RetryAfter = retryAfter ?? TimeSpan.FromSeconds(1),
        },
        GenerationErrorCode.Unavailable => new(StatusCodes.Status503ServiceUnavailable, ServerError, message, code: "unavailable"),
        _ => new(StatusCodes.Status500InternalServerError, ServerError, message),
    };

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

    /// <summary>The error as the OpenAI body (and a stream's error event) carries it.</summary>
    public OpenAiError ToError() => new(Message, Type, Param, Code);

    /// <summary>A 400 naming the request field at fault.</summary>
    public static OpenAiException InvalidField(string param, string message) =>
        new(StatusCodes.Status400BadRequest, OpenAiErrors.InvalidRequestError, message, param);
}
