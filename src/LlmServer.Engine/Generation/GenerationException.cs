namespace LlmServer.Engine.Generation;

/// <summary>Stable error codes; the REST API and the hub map them to HTTP statuses and hub error codes.</summary>
public enum GenerationErrorCode
{
    /// <summary>The request is malformed or out of range.</summary>
    InvalidRequest,

    /// <summary>The admission queue is full (HTTP 429).</summary>
    Overloaded,

    /// <summary>The prompt does not fit a slot's context.</summary>
    ContextLengthExceeded,

    /// <summary>The engine is loading, draining, stopped or faulted (HTTP 503).</summary>
    Unavailable,

    /// <summary>Something failed inside the engine.</summary>
    Internal,

    /// <summary>
    /// The model's chat template refused the request (its <c>raise_exception</c>, e.g. roles that do not alternate);
    /// the message is the template's (HTTP 400).
    /// </summary>
    TemplateRefused,
}

/// <summary>Thrown by <see cref="ITextGenerator.Submit"/> when a request is refused before it starts.</summary>
public sealed class GenerationException : Exception
{
    public GenerationException(GenerationErrorCode code, string message, string? parameter = null)
        : base(message)
    {
        Code = code;
        Parameter = parameter;
    }

    public GenerationException()
        : this(GenerationErrorCode.Internal, "Generation failed.")
    {
    }

    public GenerationException(string message)
        : this(GenerationErrorCode.Internal, message)
    {
    }

    public GenerationException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = GenerationErrorCode.Internal;
    }

    public GenerationErrorCode Code { get; }

    /// <summary>The request field at fault, when one is.</summary>
    public string? Parameter { get; }

    /// <summary>For <see cref="GenerationErrorCode.ContextLengthExceeded"/>: the prompt's token count.</summary>
    public int? PromptTokens { get; init; }

    /// <summary>For <see cref="GenerationErrorCode.ContextLengthExceeded"/>: the tokens a slot holds.</summary>
    public int? ContextLength { get; init; }

    /// <summary>For <see cref="GenerationErrorCode.Overloaded"/>: a hint for the client's Retry-After.</summary>
    public TimeSpan? RetryAfter { get; init; }
}
