using LlmServer.Engine.Generation;
using LlmServer.Errors;
using LlmServer.OpenAi;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace LlmServer.Sessions;

/// <summary>The stable error codes of the hub and the REST mirror.</summary>
public static class SessionErrorCodes
{
    public const string SessionNotFound = "session_not_found";
    public const string Busy = "busy";
    /// <summary>The scheduler's queue is full: retry after the hint; the same code as the OpenAI front ends'.</summary>
    public const string QueueFull = RefusalCodes.QueueFull;
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

    /// <summary>For queue_full and unavailable: a hint for the client's retry.</summary>
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
    /// <summary>The sessions' names of the engine's fields: a turn's text and the session's settings.</summary>
    private static readonly WireFieldNames Fields = new((field, _, _) => field switch
    {
        GenerationField.Prompt or GenerationField.Messages => "text",
        GenerationField.MaxTokens => "settings.maxTokens",
        GenerationField.Temperature => "settings.temperature",
        GenerationField.TopP => "settings.topP",
        _ => null,
    });

    /// <summary>How long a client is asked to wait after the session store was busy or unreachable.</summary>
    private static readonly TimeSpan StoreRetryAfter = TimeSpan.FromSeconds(1);

    // SQLite's primary result codes for "another connection holds the lock" (the extended codes keep them in the low byte).
    private const int SqliteBusy = 5;
    private const int SqliteLocked = 6;

    /// <summary>
    /// The one mapping of a failed session operation, for the hub and the REST mirror alike: a session error as it
    /// is; a store that is locked, busy or unreachable for now (SQLite busy or locked past its busy timeout, a
    /// transient PostgreSQL failure, a timeout) as <c>unavailable</c> with a retry hint; null for anything else
    /// (a fault of the server, left to the host).
    /// </summary>
    public static SessionException? Of(Exception exception) => exception switch
    {
        SessionException session => session,
        SqliteException sqlite when (sqlite.SqliteErrorCode & 0xFF) is SqliteBusy or SqliteLocked =>
            StoreUnavailable("the session store is locked by another writer"),
        NpgsqlException { IsTransient: true } => StoreUnavailable("the session store cannot be reached or is overloaded"),
        TimeoutException => StoreUnavailable("the session store did not answer in time"),
        _ => null,
    };

    // The store's own error text stays in the server: it names files and hosts.
    private static SessionException StoreUnavailable(string what) =>
        new(SessionErrorCodes.Unavailable, $"{what}; try again shortly") { RetryAfter = StoreRetryAfter };

    /// <summary>The session error code of an engine fault.</summary>
    public static string CodeOf(GenerationErrorCode code) => code switch
    {
        GenerationErrorCode.InvalidRequest or GenerationErrorCode.TemplateRefused => SessionErrorCodes.InvalidArgument,
        GenerationErrorCode.Overloaded => SessionErrorCodes.QueueFull,
        GenerationErrorCode.ContextLengthExceeded => SessionErrorCodes.ContextLengthExceeded,
        GenerationErrorCode.Unavailable => SessionErrorCodes.Unavailable,
        _ => SessionErrorCodes.InternalError,
    };

    /// <summary>An engine refusal (thrown before anything streamed) as a session error.</summary>
    public static SessionException FromEngine(GenerationException exception)
    {
        var parameter = Fields.Of(exception);
        return new(CodeOf(exception.Code), GenerationException.Prefixed(parameter, exception.Message), parameter) { RetryAfter = exception.BackOff };
    }

    /// <summary>For the hub: the message is the stable code, ": ", then the text.</summary>
    /// <summary>The hub's "code: text" error; the session error rides along (not sent) for the call's log.</summary>
    public static HubException ToHub(SessionException exception) => new($"{exception.Code}: {exception.Message}", exception);

    /// <summary>The writer of the sessions' REST shape, for the session paths' refusals and the REST mirror's errors.</summary>
    public static IRefusalWriter Writer { get; } = new SessionRefusalWriter();

    /// <summary>For the REST mirror: the session error in the sessions' REST shape, <c>Retry-After</c> when overloaded.</summary>
    public static IResult ToHttp(SessionException exception) => new SessionErrorResult(ToRefusal(exception));

    /// <summary>A session error as a refusal: the kind of its code, the session code kept.</summary>
    private static Refusal ToRefusal(SessionException exception) => new(
        exception.Code switch
        {
            SessionErrorCodes.SessionNotFound or SessionErrorCodes.NoGeneration => RefusalKind.NotFound,
            SessionErrorCodes.Busy => RefusalKind.Conflict,
            SessionErrorCodes.QueueFull => RefusalKind.Overloaded,
            SessionErrorCodes.InvalidArgument or SessionErrorCodes.ContextLengthExceeded => RefusalKind.InvalidRequest,
            SessionErrorCodes.Unavailable => RefusalKind.Unavailable,
            _ => RefusalKind.Internal,
        },
        exception.Message,
        exception.Code)
    {
        Field = exception.Parameter,
        RetryAfter = exception.RetryAfter,
    };

    private sealed class SessionErrorResult(Refusal refusal) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext) => Writer.WriteAsync(httpContext, refusal, httpContext.RequestAborted);
    }

    /// <summary>
    /// The sessions' REST shape: the OpenAI error envelope, with the sessions' own types where OpenAI has none
    /// (not found, conflict, unavailable) and their codes.
    /// </summary>
    private sealed class SessionRefusalWriter : IRefusalWriter
    {
        public Task WriteAsync(HttpContext context, Refusal refusal, CancellationToken cancellationToken)
        {
            var type = refusal.Kind switch
            {
                RefusalKind.NotFound => "not_found_error",
                RefusalKind.Conflict => "conflict_error",
                RefusalKind.Unavailable => "unavailable_error",
                _ => OpenAiErrors.TypeOf(refusal.Kind),
            };
            return OpenAiErrors.WriteAsync(context, refusal.Status, refusal.RetryAfter, new OpenAiError(refusal.Message, type, refusal.Field, refusal.Code), cancellationToken);
        }
    }
}
