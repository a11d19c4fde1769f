using LlmServer.Engine.Generation;
using LlmServer.OpenAi;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Sessions;

/// <summary>The stable error codes of the hub and the REST mirror.</summary>
public static class SessionErrorCodes
{
    public const string SessionNotFound = "session_not_found";
    public const string Busy = "busy";
    public const string Overloaded = "overloaded";
    public const string ContextLengthExceeded = "context_length_exceeded";
    public const string InvalidArgument = "invalid_argument";
    public const string Unavailable = "unavailable";

    /// <summary>Resume asked for a session that has no running or recently finished generation.</summary>
    public const string NoGeneration = "no_generation";

    /// <summary>Something failed inside the server or the engine.</summary>
    public const string InternalError = "internal_error";
}

/// <summary>A refused session operation; the hub and the REST mirror turn it into their error shapes.</summary>
internal sealed class SessionException : Exception
{
    public SessionException(string code, string message, string? parameter = null)
        : base(message)
    {
        Code = code;
        Parameter = parameter;
    }

    public SessionException()
        : this(SessionErrorCodes.InternalError, "The session operation failed.")
    {
    }

    public SessionException(string message)
        : this(SessionErrorCodes.InternalError, message)
    {
    }

    public SessionException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = SessionErrorCodes.InternalError;
    }

    public string Code { get; }

    /// <summary>The argument at fault, when one is.</summary>
    public string? Parameter { get; }

    /// <summary>For overloaded: a hint for the client's retry.</summary>
    public TimeSpan? RetryAfter { get; init; }

    public static SessionException NotFound(string id) =>
        new(SessionErrorCodes.SessionNotFound, $"session '{id}' does not exist", "sessionId");

    public static SessionException Invalid(string parameter, string message) =>
        new(SessionErrorCodes.InvalidArgument, message, parameter);
}

/// <summary>
/// The one error mapping of the sessions' wire format: engine faults become session errors here, and session
/// errors become the hub's <see cref="HubException"/> ("code: text") and the REST mirror's JSON body here.
/// </summary>
internal static class SessionErrors
{
    /// <summary>The session error code of an engine fault.</summary>
    public static string CodeOf(GenerationErrorCode code) => code switch
    {
        GenerationErrorCode.InvalidRequest => SessionErrorCodes.InvalidArgument,
        GenerationErrorCode.Overloaded => SessionErrorCodes.Overloaded,
        GenerationErrorCode.ContextLengthExceeded => SessionErrorCodes.ContextLengthExceeded,
        GenerationErrorCode.Unavailable => SessionErrorCodes.Unavailable,
        _ => SessionErrorCodes.InternalError,
    };

    /// <summary>An engine refusal (thrown before anything streamed) as a session error.</summary>
    public static SessionException FromEngine(GenerationException exception) =>
        new(CodeOf(exception.Code), exception.Message, exception.Parameter) { RetryAfter = exception.RetryAfter };

    /// <summary>For the hub: the message is the stable code, ": ", then the text.</summary>
    public static HubException ToHub(SessionException exception) => new($"{exception.Code}: {exception.Message}");

    /// <summary>
    /// For the REST mirror: the OpenAI error body (written by the OpenAI front end's one writer) with the session
    /// code, and <c>Retry-After</c> when overloaded.
    /// </summary>
    public static IResult ToHttp(SessionException exception)
    {
        var (status, type) = exception.Code switch
        {
            SessionErrorCodes.SessionNotFound or SessionErrorCodes.NoGeneration => (StatusCodes.Status404NotFound, "not_found_error"),
            SessionErrorCodes.Busy => (StatusCodes.Status409Conflict, "conflict_error"),
            SessionErrorCodes.Overloaded => (StatusCodes.Status429TooManyRequests, OpenAiErrors.RateLimitError),
            SessionErrorCodes.InvalidArgument or SessionErrorCodes.ContextLengthExceeded => (StatusCodes.Status400BadRequest, OpenAiErrors.InvalidRequestError),
            SessionErrorCodes.Unavailable => (StatusCodes.Status503ServiceUnavailable, "unavailable_error"),
            _ => (StatusCodes.Status500InternalServerError, OpenAiErrors.ServerError),
        };
        var error = new OpenAiException(status, type, exception.Message, exception.Parameter, exception.Code) { RetryAfter = exception.RetryAfter };
        return new OpenAiErrorResult(error);
    }

    private sealed class OpenAiErrorResult(OpenAiException error) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext) => OpenAiErrors.WriteAsync(httpContext, error, httpContext.RequestAborted);
    }
}
