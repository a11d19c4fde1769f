using LlmServer.Engine.Generation;
using LlmServer.Errors;

namespace LlmServer.OpenAi;

/// <summary>
/// The OpenAI front end's errors: the shape <c>{"error":{"message","type","param","code"}}</c> with a real HTTP
/// status, and the mapping of engine faults onto it.
/// </summary>
internal static class OpenAiErrors
{
    public const string InvalidRequestError = "invalid_request_error";
    public const string ServerError = "server_error";
    public const string RateLimitError = "rate_limit_error";

    /// <summary>
    /// Writes the error as the whole response, in the OpenAI shape. Call it only before the response has started;
    /// a response that has started (a stream) reports errors as an SSE event instead.
    /// </summary>
    public static Task WriteAsync(HttpContext context, OpenAiException error, CancellationToken cancellationToken = default) =>
        WriteAsync(context, error.StatusCode, error.RetryAfter, error.ToError(), cancellationToken);

    /// <summary>Writes an error body of the OpenAI envelope (the sessions' REST mirror writes its own types and codes in it).</summary>
    public static Task WriteAsync(HttpContext context, int statusCode, TimeSpan? retryAfter, OpenAiError error, CancellationToken cancellationToken) =>
        ErrorResponse.WriteAsync(context, statusCode, retryAfter, new OpenAiErrorResponse(error), OpenAiJson.Context.OpenAiErrorResponse, cancellationToken);

    /// <summary>The OpenAI error type of a refusal's kind.</summary>
    public static string TypeOf(RefusalKind kind) => kind switch
    {
        RefusalKind.RateLimited or RefusalKind.Overloaded => RateLimitError,
        RefusalKind.Unavailable or RefusalKind.Internal => ServerError,
        _ => InvalidRequestError,
    };

    /// <summary>
    /// An engine refusal (thrown before anything streamed) in OpenAI terms, the field at fault named by
    /// <paramref name="fields"/> (the front end's names: OpenAI's when null), in <c>param</c> and in front of the message.
    /// </summary>
    public static OpenAiException FromGeneration(GenerationException exception, WireFieldNames? fields = null)
    {
        var param = (fields ?? OpenAiFieldNames.Names).Of(exception);
        if (exception.Code != GenerationErrorCode.ContextLengthExceeded)
        {
            return FromEngine(exception.Code, GenerationException.Prefixed(param, exception.Message), param, exception.BackOff);
        }

        var message = exception.PromptTokens is { } prompt && exception.ContextLength is { } context
            ? $"This model's maximum context length is {context} tokens, prompt and completion together, but your prompt has {(exception.PromptTokensAtLeast ? "at least " : string.Empty)}{prompt} tokens{(prompt == context ? ", which leaves none for the completion" : string.Empty)}. Shorten the prompt."
            : exception.Message;
        return FromEngine(exception.Code, message, param, retryAfter: null);
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
                code: "cancelled")
            {
                AfterGeneration = true,
            };
        }

        var error = completion.Error ?? new GenerationError(GenerationErrorCode.Internal, "The generation failed.");
        var failed = FromEngine(error.Code, error.Message, param: null, retryAfter: null);
        failed.AfterGeneration = true;
        return failed;
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
        GenerationErrorCode.Overloaded => new(StatusCodes.Status429TooManyRequests, RateLimitError, message, code: RefusalCodes.QueueFull)
        {
            Kind = RefusalKind.Overloaded,
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
        Kind = Refusal.KindOf(statusCode);
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
        Kind = RefusalKind.Internal;
    }

    public int StatusCode { get; }

    /// <summary>The request ran on the engine before it failed: not a refusal a router may send elsewhere.</summary>
    public bool AfterGeneration { get; set; }

    public string Type { get; }

    public string? Param { get; }

    public string? Code { get; }

    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The refusal in neutral terms: by default the kind of its status; a full queue says <see cref="RefusalKind.Overloaded"/>.</summary>
    public RefusalKind Kind { get; init; }

    /// <summary>The error as the OpenAI body (and a stream's error event) carries it.</summary>
    public OpenAiError ToError() => new(Message, Type, Param, Code);

    /// <summary>The error for the writer of whichever front end owns the path (the Anthropic API reuses these refusals).</summary>
    public Refusal ToRefusal() => new(Kind, Message, Code)
    {
        Field = Param,
        RetryAfter = RetryAfter,
        Status = StatusCode,
        OpenAiType = Type,
    };

    /// <summary>A 400 naming the request field at fault.</summary>
    public static OpenAiException InvalidField(string param, string message) =>
        new(StatusCodes.Status400BadRequest, OpenAiErrors.InvalidRequestError, message, param);

    /// <summary>A 400 for a field of the wrong JSON type, in OpenAI's words; <paramref name="got"/> when known ("an object").</summary>
    public static OpenAiException InvalidType(string param, string expected, string? got = null) =>
        InvalidField(param, got is null
            ? $"Invalid type for '{param}': expected {expected}."
            : $"Invalid type for '{param}': expected {expected}, but got {got} instead.");
}

/// <summary>Writes the refusals of the OpenAI paths (the default for every path no other front end claims).</summary>
internal sealed class OpenAiRefusalWriter : IRefusalWriter
{
    public Task WriteAsync(HttpContext context, Refusal refusal, CancellationToken cancellationToken) =>
        OpenAiErrors.WriteAsync(context, refusal.Status, refusal.RetryAfter, new OpenAiError(refusal.Message, refusal.OpenAiType ?? OpenAiErrors.TypeOf(refusal.Kind), refusal.Field, refusal.Code), cancellationToken);
}
