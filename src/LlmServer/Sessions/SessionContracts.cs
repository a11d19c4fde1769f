using System.Text.Json.Serialization;

namespace LlmServer.Sessions;

// The hub contract shared with the web UI (README, "Sessions"). SignalR and the REST mirror send these as camelCase JSON.

/// <summary>Per-session generation settings; a null field means the server's default.</summary>
public sealed record SessionSettings(double? Temperature = null, double? TopP = null, int? MaxTokens = null, long? Seed = null);

public sealed record CreateSessionRequest(string? Title = null, string? SystemPrompt = null, SessionSettings? Settings = null);

/// <summary>A session without its messages.</summary>
/// <param name="MessageCount">
/// The conversation's messages that are written: user messages and answers that ended, however they ended (stop,
/// length, cancelled, error, interrupted). The answer being written now is not counted until it ends, so while a turn
/// runs this is one less than the messages <c>GetSession</c> returns (whose last one, the running answer, has a null
/// finish reason).
/// </param>
/// <param name="Generating">A turn of the session runs now (on this server or another sharing the store).</param>
public sealed record SessionInfo(
    string Id,
    string Title,
    string? SystemPrompt,
    SessionSettings Settings,
    [property: JsonConverter(typeof(SessionTimestampConverter))] DateTimeOffset CreatedAt,
    [property: JsonConverter(typeof(SessionTimestampConverter))] DateTimeOffset UpdatedAt,
    int MessageCount,
    bool Generating);

/// <summary>
/// One message of the conversation. <see cref="Index"/> is its position (0 is the first user message; the system
/// prompt is <see cref="SessionInfo.SystemPrompt"/>, not a message). Token counts, the finish reason and
/// <see cref="ContextStart"/> are set on assistant messages. An assistant message still being written has a null
/// finish reason (its content is the last checkpoint); one a crash cut short has <c>interrupted</c>.
/// </summary>
/// <param name="Content">The text; on an assistant message of a reasoning model, its answer after the thinking.</param>
/// <param name="ContextStart">
/// The index of the first stored message the model saw for this answer (the system prompt is always seen); earlier
/// messages were outside its context window.
/// </param>
/// <param name="Reasoning">
/// On an assistant message: what a reasoning model thought before it answered (its <c>&lt;think&gt;</c> block),
/// apart from <see cref="Content"/>; null when it wrote none. Later turns' prompts leave it out.
/// </param>
/// <param name="ReasoningTokens">
/// On a finished assistant message: how many of <see cref="CompletionTokens"/> went to the thinking (0 when none;
/// null wherever the other counts are: while it is written, interrupted, failed without a completion; and on answers
/// stored before schema version 6).
/// </param>
public sealed record SessionMessage(
    int Index,
    string Role,
    string Content,
    [property: JsonConverter(typeof(SessionTimestampConverter))] DateTimeOffset CreatedAt,
    int? PromptTokens,
    int? CachedTokens,
    int? CompletionTokens,
    string? FinishReason,
    int? ContextStart = null,
    string? Reasoning = null,
    int? ReasoningTokens = null);

public sealed record SessionDetail(SessionInfo Info, IReadOnlyList<SessionMessage> Messages);

/// <summary>
/// An event of a generation: <c>reasoning</c> (text of a reasoning model's thinking, which comes before the answer)
/// and <c>delta</c> (text of the answer), then exactly one <c>done</c> (finish reason, usage, timings) or
/// <c>error</c> (code, message). <see cref="Seq"/> counts from 1 within one generation. <c>done</c> carries
/// <see cref="ContextStart"/>: the index of the first stored message the model saw (as on the stored message).
/// A field an event does not carry is left out on the wire (REST and hub alike), not written as null: most of a
/// <c>delta</c> would be nulls, and clients read a missing field as null.
/// </summary>
public sealed record ChatStreamEvent(
    long Seq,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Text = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? FinishReason = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ChatUsage? Usage = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ChatTimings? Timings = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Code = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Message = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? ContextStart = null)
{
    public const string DeltaType = "delta";
    public const string ReasoningType = "reasoning";
    public const string DoneType = "done";
    public const string ErrorType = "error";
}

/// <param name="ReasoningTokens">How many of <paramref name="CompletionTokens"/> went to a reasoning model's thinking (0 when none).</param>
public sealed record ChatUsage(int PromptTokens, int CachedTokens, int CompletionTokens, int ReasoningTokens);

public sealed record ChatTimings(double QueuedMs, double PrefillMs, double DecodeMs, double TokensPerSecond);

/// <summary>REST: <c>PATCH /api/sessions/{id}</c>; absent fields stay as they are, an empty system prompt clears it.</summary>
public sealed record UpdateSessionRequest(string? Title = null, string? SystemPrompt = null, SessionSettings? Settings = null);

/// <summary>REST: <c>POST /api/sessions/{id}/messages</c> and <c>PUT /api/sessions/{id}/messages/{index}</c>.</summary>
public sealed record SendMessageRequest(string? Text);
