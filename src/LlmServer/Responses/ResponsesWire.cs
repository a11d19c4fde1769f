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
    IReadOnlyList<ResponseOutputMessage> Output,
    string OutputText,
    bool ParallelToolCalls,
    string? PreviousResponseId,
    ResponseReasoning Reasoning,
    bool Store,
    float Temperature,
    ResponseTextInfo Text,
    string ToolChoice,
    IReadOnlyList<JsonElement> Tools,
    float TopP,
    string Truncation,
    ResponseUsage? Usage,
    string? User,
    IReadOnlyDictionary<string, string> Metadata);

public sealed record ResponseErrorInfo(string Code, string Message);

public sealed record ResponseIncompleteDetails(string Reason);

public sealed record ResponseOutputMessage(string Type, string Id, string Status, string Role, IReadOnlyList<ResponseOutputText> Content);

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
