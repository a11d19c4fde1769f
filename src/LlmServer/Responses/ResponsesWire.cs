using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmServer.Responses;

/// <summary>The <c>response</c> object, as OpenAI's Responses API returns and streams it.</summary>
public sealed record ResponseObject(
    string Id,
    string Object,
    long CreatedAt,
    string Status,
    ResponseErrorInfo? Error,
    ResponseIncompleteDetails? IncompleteDetails,
    string? Instructions,
    int? MaxOutputTokens,
    string Model,
    IReadOnlyList<ResponseOutputItem> Output,
    string OutputText,
    bool ParallelToolCalls,
    string? PreviousResponseId,
    ResponseReasoning Reasoning,
    bool Store,
    float Temperature,
    ResponseTextInfo Text,
    JsonElement ToolChoice,
    IReadOnlyList<ResponseToolInfo> Tools,
    float TopP,
    string Truncation,
    ResponseUsage? Usage,
    string? User,
    IReadOnlyDictionary<string, string> Metadata);

public sealed record ResponseErrorInfo(string Code, string Message);

public sealed record ResponseIncompleteDetails(string Reason);

/// <summary>An item of <c>output</c>: a message, a function call, or reasoning. Each is written with its own fields.</summary>
[JsonDerivedType(typeof(ResponseOutputMessage))]
[JsonDerivedType(typeof(ResponseFunctionCallItem))]
[JsonDerivedType(typeof(ResponseReasoningItem))]
public abstract record ResponseOutputItem(
    [property: JsonPropertyOrder(-3)] string Type,
    [property: JsonPropertyOrder(-2)] string Id,
    [property: JsonPropertyOrder(-1)] string Status);

public sealed record ResponseOutputMessage(string Id, string Status, string Role, IReadOnlyList<ResponseOutputText> Content)
    : ResponseOutputItem("message", Id, Status);

/// <summary>A call the model made: <see cref="CallId"/> is what the <c>function_call_output</c> answering it names.</summary>
public sealed record ResponseFunctionCallItem(string Id, string Status, string CallId, string Name, string Arguments)
    : ResponseOutputItem("function_call", Id, Status);

/// <summary>
/// The model's reasoning (its <c>&lt;think&gt;</c> block) as one <c>reasoning_text</c> part, as OpenAI returns an
/// open-weight reasoning model's; <see cref="Summary"/> is empty: nothing summarises it.
/// </summary>
public sealed record ResponseReasoningItem(string Id, string Status, IReadOnlyList<JsonElement> Summary, IReadOnlyList<ResponseReasoningText> Content)
    : ResponseOutputItem("reasoning", Id, Status);

public sealed record ResponseReasoningText(string Type, string Text);

/// <summary>A function tool as the response echoes it.</summary>
public sealed record ResponseToolInfo(string Type, string Name, string? Description, JsonElement? Parameters, bool Strict);

public sealed record ResponseOutputText(string Type, string Text, IReadOnlyList<JsonElement> Annotations, IReadOnlyList<JsonElement> Logprobs);

public sealed record ResponseReasoning(string? Effort, string? Summary);

public sealed record ResponseTextInfo(ResponseTextFormatInfo Format);

public sealed record ResponseTextFormatInfo(
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] JsonElement? Schema,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Strict);

public sealed record ResponseUsage(
    int InputTokens,
    ResponseInputTokensDetails InputTokensDetails,
    int OutputTokens,
    ResponseOutputTokensDetails OutputTokensDetails,
    int TotalTokens);

public sealed record ResponseInputTokensDetails(int CachedTokens);

public sealed record ResponseOutputTokensDetails(int ReasoningTokens);

public sealed record ResponseDeleted(string Id, string Object, bool Deleted);
