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

/// <summary>
/// The part of a request at fault, in the engine's own terms: the properties of <see cref="GenerationRequest"/> and
/// <see cref="SamplingOptions"/>, and the inputs of tokenizing and embedding. Each front end names it as its wire does.
/// </summary>
public enum GenerationField
{
    Prompt,
    Messages,
    MaxTokens,
    Stop,
    IgnoreEos,
    Grammar,
    Choices,
    TopLogProbs,

    /// <summary>The tools as a whole (for example, a schema the tool grammar cannot enforce).</summary>
    Tools,

    /// <summary>The name of the tool at <see cref="GenerationException.FieldIndex"/>.</summary>
    ToolName,

    /// <summary>The parameter schema of the tool at <see cref="GenerationException.FieldIndex"/>.</summary>
    ToolParameters,
    ToolChoice,
    Temperature,
    TopP,
    TopK,
    MinP,
    RepeatPenalty,
    FrequencyPenalty,
    PresencePenalty,
    PenaltyLastN,
    LogitBias,

    /// <summary>The token ids given to detokenize.</summary>
    Tokens,

    /// <summary>The embedding input at <see cref="GenerationException.FieldIndex"/>.</summary>
    Input,

    /// <summary>The size asked of embedding vectors.</summary>
    Dimensions,

    /// <summary>
    /// The arguments of call <see cref="GenerationException.CallIndex"/> of message
    /// <see cref="GenerationException.FieldIndex"/> (of the request's messages), which a template takes as a JSON object.
    /// </summary>
    ToolCallArguments,
}

/// <summary>Thrown by <see cref="ITextGenerator.Submit"/> when a request is refused before it starts.</summary>
public sealed class GenerationException : Exception
{
    public GenerationException(GenerationErrorCode code, string message, GenerationField? field = null)
        : base(message)
    {
        Code = code;
        Field = field;
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

    private GenerationException(GenerationException engine, string message)
        : base(message, engine)
    {
        Code = engine.Code;
        Field = engine.Field;
        FieldIndex = engine.FieldIndex;
        CallIndex = engine.CallIndex;
        PromptTokens = engine.PromptTokens;
        PromptTokensAtLeast = engine.PromptTokensAtLeast;
        ContextLength = engine.ContextLength;
        BackOff = engine.BackOff;
    }

    public GenerationErrorCode Code { get; }

    /// <summary>The part of the request at fault, when one is.</summary>
    public GenerationField? Field { get; }

    /// <summary>With a <see cref="Field"/> that is one item of a list (a tool, an embedding input): the item's index.</summary>
    public int? FieldIndex { get; init; }

    /// <summary>With <see cref="GenerationField.ToolCallArguments"/>: the call's index in its message's tool calls.</summary>
    public int? CallIndex { get; init; }

    /// <summary>For <see cref="GenerationErrorCode.ContextLengthExceeded"/>: the prompt's token count.</summary>
    public int? PromptTokens { get; init; }

    /// <summary>
    /// <see cref="PromptTokens"/> is a lower bound: the prompt was refused before it was tokenized, since even its
    /// fewest possible tokens exceed the limit.
    /// </summary>
    public bool PromptTokensAtLeast { get; init; }

    /// <summary>For <see cref="GenerationErrorCode.ContextLengthExceeded"/>: the tokens a slot holds.</summary>
    public int? ContextLength { get; init; }

    /// <summary>
    /// For <see cref="GenerationErrorCode.Overloaded"/>: the engine's own estimate of how long to wait before trying
    /// again. Front ends turn it into their wire's hint (HTTP <c>Retry-After</c>).
    /// </summary>
    public TimeSpan? BackOff { get; init; }

    /// <summary>
    /// The one rule for naming the field at fault in a message, for callers that put it there: <c>field: message</c>
    /// (the engine's messages do not name the field, having only its own names for it), unless the message already
    /// begins by naming it (<c>field: ...</c>, <c>field is ...</c>, <c>'field' ...</c>, as front ends' own messages do).
    /// </summary>
    public static string Prefixed(string? field, string message) =>
        field is null
        || message.StartsWith(field + ":", StringComparison.Ordinal)
        || message.StartsWith(field + " ", StringComparison.Ordinal)
        || message.StartsWith($"'{field}'", StringComparison.Ordinal)
            ? message
            : $"{field}: {message}";

    /// <summary>
    /// This refusal as a caller with its own name for the field sees it: the message <see cref="Prefixed"/> with
    /// <paramref name="fieldName"/>, the rest kept, and this exception (the engine's wording) as the inner one.
    /// </summary>
    public GenerationException WithFieldName(string fieldName) => new(this, Prefixed(fieldName, Message));
}
