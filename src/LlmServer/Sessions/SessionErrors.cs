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
