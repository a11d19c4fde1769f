namespace LlmServer.Engine.Generation;

/// <summary>One generation request. Give either <see cref="Prompt"/> (raw text) or <see cref="Messages"/> (chat).</summary>
public sealed class GenerationRequest
{
    /// <summary>Raw prompt text, used as is (BOS added when the model wants one).</summary>
    public string? Prompt { get; init; }

    /// <summary>Chat messages, rendered with the model's chat template (or the configured fallback).</summary>
    public IReadOnlyList<ChatTurn>? Messages { get; init; }

    /// <summary>Sampling settings; every field is honoured.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Most tokens to generate per choice; <c>null</c> means until the slot's context is full.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Stop sequences: matched across token boundaries, never emitted.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Keep generating past end-of-generation tokens (for benchmarks).</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>Optional GBNF grammar (root rule <c>root</c>) that constrains the output.</summary>
    public string? Grammar { get; init; }

    /// <summary>
    /// Optional session key: the sequence stays resident in its KV slot after the request, and the session's
    /// next request reuses the longest common token prefix.
    /// </summary>
    public string? SessionKey { get; init; }

    /// <summary>Number of choices (1 to 4); extra choices fork the prompt's KV cache instead of prefilling again.</summary>
    public int Choices { get; init; } = 1;

    /// <summary>Report the log-probability of each generated token.</summary>
    public bool LogProbs { get; init; }

    /// <summary>With <see cref="LogProbs"/>: how many most likely alternatives to report per token (0 to 20).</summary>
    public int TopLogProbs { get; init; }

    /// <summary>An id for logs and metrics; one is made when absent.</summary>
    public string? RequestId { get; init; }

    /// <summary>Functions the model may call, rendered into the prompt by the model's chat template.</summary>
    public IReadOnlyList<ToolDefinition> Tools { get; init; } = [];

    /// <summary>
    /// Which lane the request waits in: <see cref="RequestPriority.Batch"/> requests only take slots that
    /// interactive traffic leaves idle.
    /// </summary>
    public RequestPriority Priority { get; init; } = RequestPriority.Interactive;
}

/// <summary>The admission lane of a request.</summary>
public enum RequestPriority
{
    /// <summary>A user is waiting: admitted first.</summary>
    Interactive,

    /// <summary>Offline work (the Batch API): fills slots interactive requests leave idle and yields them back.</summary>
    Batch,
}

/// <summary>
/// A chat message. <see cref="Content"/> is null for an assistant message that only calls tools; a <c>tool</c>
/// message answers the call named by <see cref="ToolCallId"/>.
/// </summary>
public sealed record ChatTurn(string Role, string? Content)
{
    /// <summary>The calls an assistant message made.</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    /// <summary>On a <c>tool</c> message: the id of the call it answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>On a <c>tool</c> message: the function's name, where the client gave it.</summary>
    public string? Name { get; init; }
}

/// <summary>A function call the model made: <see cref="Arguments"/> is the JSON text of its arguments.</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>A function offered to the model: <see cref="Parameters"/> is its JSON schema (an object schema), or null.</summary>
public sealed record ToolDefinition(string Name, string? Description, System.Text.Json.JsonElement? Parameters);
