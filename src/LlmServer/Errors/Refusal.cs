namespace LlmServer.Errors;

/// <summary>Stable error codes that several front ends send alike.</summary>
internal static class RefusalCodes
{
    /// <summary>
    /// The scheduler's queue is full (HTTP 429 with <c>Retry-After</c>): the code of the OpenAI, completions and
    /// Responses APIs and of the sessions' hub and REST mirror. The Anthropic API keeps its own <c>overloaded_error</c>.
    /// </summary>
    public const string QueueFull = "queue_full";

    /// <summary>
    /// A per-key limit was reached (HTTP 429 with <c>Retry-After</c>; on a hub, the message's prefix): requests per
    /// minute, concurrent generations, open responses. Every front end sends it alike.
    /// </summary>
    public const string RateLimitExceeded = "rate_limit_exceeded";
}

/// <summary>What kind of refusal, in no API's words; each front end turns it into its own status and error type.</summary>
internal enum RefusalKind
{
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooLarge,

    /// <summary>A limit on the caller (requests per minute, concurrent generations of a key).</summary>
    RateLimited,

    /// <summary>The server's own capacity (a full queue): retry shortly.</summary>
    Overloaded,

    /// <summary>The server cannot serve now (loading, draining).</summary>
    Unavailable,
    Internal,
}

/// <summary>
/// A refused request, stated neutrally: the operations layer (keys, limits, draining, body size) and the front ends
/// state refusals like this, and the front end that owns the request's path writes it in its own shape
/// (<see cref="RefusalWriters"/>).
/// </summary>
/// <param name="Kind">What went wrong; it decides the HTTP status (<see cref="Status"/>) unless the refusal states its own.</param>
/// <param name="Message">For a person: what happened and what to do.</param>
/// <param name="Code">A stable code for programs (<c>invalid_api_key</c>, <c>rate_limit_exceeded</c>), when there is one.</param>
internal sealed record Refusal(RefusalKind Kind, string Message, string? Code = null)
{
    /// <summary>The request field at fault, as the client's API names it.</summary>
    public string? Field { get; init; }

    /// <summary>When the client may try again (HTTP <c>Retry-After</c>).</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>
    /// The HTTP status: by default that of <see cref="Kind"/>; a refusal stated with a status of its own (an OpenAI
    /// 422) keeps it. A front end may answer some kinds with its own (Anthropic's 529).
    /// </summary>
    public int Status { get; init; } = StatusOf(Kind);

    /// <summary>The OpenAI error type, when the refusal was stated in the OpenAI API's terms; otherwise the writer derives one from <see cref="Kind"/>.</summary>
    public string? OpenAiType { get; init; }

    public static int StatusOf(RefusalKind kind) => kind switch
    {
        RefusalKind.Unauthorized => StatusCodes.Status401Unauthorized,
        RefusalKind.Forbidden => StatusCodes.Status403Forbidden,
        RefusalKind.NotFound => StatusCodes.Status404NotFound,
        RefusalKind.MethodNotAllowed => StatusCodes.Status405MethodNotAllowed,
        RefusalKind.Conflict => StatusCodes.Status409Conflict,
        RefusalKind.TooLarge => StatusCodes.Status413PayloadTooLarge,
        RefusalKind.RateLimited or RefusalKind.Overloaded => StatusCodes.Status429TooManyRequests,
        RefusalKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
        RefusalKind.Internal => StatusCodes.Status500InternalServerError,
        _ => StatusCodes.Status400BadRequest,
    };

    /// <summary>The kind of an HTTP status (429 reads as a caller's limit; a full queue states <see cref="RefusalKind.Overloaded"/> itself).</summary>
    public static RefusalKind KindOf(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => RefusalKind.Unauthorized,
        StatusCodes.Status403Forbidden => RefusalKind.Forbidden,
        StatusCodes.Status404NotFound => RefusalKind.NotFound,
        StatusCodes.Status405MethodNotAllowed => RefusalKind.MethodNotAllowed,
        StatusCodes.Status409Conflict => RefusalKind.Conflict,
        StatusCodes.Status413PayloadTooLarge => RefusalKind.TooLarge,
        StatusCodes.Status429TooManyRequests => RefusalKind.RateLimited,
        StatusCodes.Status503ServiceUnavailable => RefusalKind.Unavailable,
        >= 500 => RefusalKind.Internal,
        _ => RefusalKind.InvalidRequest,
    };
}
