namespace LlmServer.Engine.Generation;

/// <summary>An event of a generation stream. <see cref="Choice"/> tells which choice it belongs to.</summary>
public abstract record GenerationEvent(int Choice);

/// <summary>
/// Text as soon as it is decodable (never a broken UTF-8 character, never part of a stop sequence).
/// <see cref="Tokens"/> is how many generated tokens this piece completes.
/// </summary>
public sealed record TextDelta(int Choice, string Text, int Tokens, IReadOnlyList<TokenLogProb>? LogProbs) : GenerationEvent(Choice);

/// <summary>
/// A piece of the model's reasoning (its <c>&lt;think&gt;</c> block), apart from the answer's <see cref="TextDelta"/>s:
/// only when <see cref="GenerationRequest.SplitReasoning"/> asked for it and the template's model writes such a block.
/// <see cref="Tokens"/> counts as <see cref="TextDelta.Tokens"/> does (the tokens are completion tokens all the same).
/// </summary>
public sealed record ReasoningDelta(int Choice, string Text, int Tokens, IReadOnlyList<TokenLogProb>? LogProbs) : GenerationEvent(Choice);

/// <summary>
/// The request was admitted to a slot and its cached prefix is known (only when <see cref="GenerationRequest.ReportAdmission"/>
/// asked for it): the first event of the stream, before any text. The figures equal those of every choice's final
/// <see cref="GenerationUsage"/>. <see cref="GenerationEvent.Choice"/> is 0: it speaks for the whole request.
/// </summary>
public sealed record RequestAdmitted(int Choice, int PromptTokens, int CachedPromptTokens) : GenerationEvent(Choice);

/// <summary>
/// The model started a tool call: <see cref="Index"/> counts the choice's calls from 0, <see cref="Id"/> is the
/// call's id (<c>call_...</c>, or 9 alphanumerics where the template demands them). Its arguments follow as
/// <see cref="ToolCallArgumentsDelta"/>s.
/// </summary>
public sealed record ToolCallStarted(int Choice, int Index, string Id, string Name) : GenerationEvent(Choice);

/// <summary>The next piece of a tool call's arguments (JSON text; the pieces joined are the arguments).</summary>
public sealed record ToolCallArgumentsDelta(int Choice, int Index, string Fragment) : GenerationEvent(Choice);

/// <summary>The last event of a choice.</summary>
public sealed record GenerationCompleted(
    int Choice,
    FinishReason FinishReason,
    GenerationUsage Usage,
    GenerationTimings Timings,
    GenerationError? Error = null) : GenerationEvent(Choice)
{
    /// <summary>With <see cref="FinishReason.Stop"/>: the stop sequence that ended the text (null for an end-of-generation token).</summary>
    public string? StopSequence { get; init; }
}

public enum FinishReason
{
    /// <summary>End of generation token or a stop sequence.</summary>
    Stop,

    /// <summary>Max tokens reached, or the slot's context is full.</summary>
    Length,

    /// <summary>The caller cancelled or went away.</summary>
    Cancelled,

    /// <summary>The request failed; <see cref="GenerationCompleted.Error"/> says why.</summary>
    Error,

    /// <summary>The model ended its turn with tool calls (it stopped by itself, after at least one call).</summary>
    ToolCalls,
}

/// <summary>
/// The one spelling of a finish reason on the wire: OpenAI's names (<c>stop</c>, <c>length</c>, <c>tool_calls</c>),
/// which the sessions' events and Microsoft.Extensions.AI share, plus <c>cancelled</c> and <c>error</c>.
/// </summary>
public static class FinishReasonNames
{
    public static string ToName(this FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.ToolCalls => "tool_calls",
        FinishReason.Cancelled => "cancelled",
        _ => "error",
    };
}

/// <summary>Token counts of one choice. Prompt tokens served from the KV cache are in <see cref="CachedPromptTokens"/>.</summary>
public sealed record GenerationUsage(int PromptTokens, int CachedPromptTokens, int CompletionTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;

    /// <summary>
    /// How many of <see cref="CompletionTokens"/> were the model's reasoning, when it was split from the answer
    /// (<see cref="ReasoningDelta"/>): its <c>&lt;think&gt;</c> block, both tags included, up to the token that completes
    /// the closing tag; all of them when the block never closed. 0 without a split or a block.
    /// </summary>
    public int ReasoningTokens { get; init; }
}

/// <summary>Where the time of one choice went.</summary>
public sealed record GenerationTimings(TimeSpan Queued, TimeSpan Prefill, TimeSpan Decode)
{
    /// <summary>From admission to the first generated token: queue plus prefill.</summary>
    public TimeSpan TimeToFirstToken => Queued + Prefill;
}

/// <summary>Why a started generation failed.</summary>
public sealed record GenerationError(GenerationErrorCode Code, string Message);

/// <summary>Log-probability of one generated token and, if asked, its most likely alternatives.</summary>
public sealed record TokenLogProb(int TokenId, string Token, byte[] Bytes, float LogProb, IReadOnlyList<TopLogProb> TopLogProbs);

/// <summary>One alternative of a <see cref="TokenLogProb"/>.</summary>
public sealed record TopLogProb(int TokenId, string Token, byte[] Bytes, float LogProb);
