using LlmServer.Engine.Generation;

namespace LlmServer.Sessions;

/// <summary>Engine results and stored rows in the sessions' wire types (the hub and the REST mirror send the same).</summary>
internal static class SessionWire
{
    /// <summary>The finish reason of an answer a crash cut short (found unfinished when the server started).</summary>
    public const string Interrupted = "interrupted";

    public static SessionInfo Info(StoredSession session, bool generating) => new(
        session.Id,
        session.Title,
        session.SystemPrompt,
        session.Settings,
        session.CreatedAt,
        session.UpdatedAt,
        session.MessageCount,
        generating);

    public static ChatStreamEvent Delta(long seq, string text) => new(seq, ChatStreamEvent.DeltaType, Text: text);

    public static ChatStreamEvent Reasoning(long seq, string text) => new(seq, ChatStreamEvent.ReasoningType, Text: text);

    /// <summary>
    /// The last event of a generation: <c>done</c>, or <c>error</c> when the engine failed it or
    /// <paramref name="failure"/> (a fault of the server around it) says so.
    /// </summary>
    public static ChatStreamEvent Ending(long seq, GenerationCompleted? completed, string? failure, int contextStart)
    {
        var usage = completed is null
            ? null
            : new ChatUsage(completed.Usage.PromptTokens, completed.Usage.CachedPromptTokens, completed.Usage.CompletionTokens, completed.Usage.ReasoningTokens);
        var timings = completed is null ? null : Timings(completed);
        var finishReason = completed?.FinishReason ?? FinishReason.Error;
        if (failure is not null || finishReason == FinishReason.Error)
        {
            var code = completed?.Error is { } error ? SessionErrors.CodeOf(error.Code) : SessionErrorCodes.InternalError;
            var text = failure ?? completed?.Error?.Message ?? "the generation failed";
            return new ChatStreamEvent(seq, ChatStreamEvent.ErrorType, FinishReason: FinishReason.Error.ToName(), Usage: usage, Timings: timings, Code: code, Message: text);
        }

        return new ChatStreamEvent(
            seq, ChatStreamEvent.DoneType, FinishReason: finishReason.ToName(), Usage: usage, Timings: timings, ContextStart: contextStart);
    }

    private static ChatTimings Timings(GenerationCompleted completed)
    {
        var timings = completed.Timings;
        var decodeSeconds = timings.Decode.TotalSeconds;
        return new ChatTimings(
            timings.Queued.TotalMilliseconds,
            timings.Prefill.TotalMilliseconds,
            timings.Decode.TotalMilliseconds,
            decodeSeconds > 0 ? completed.Usage.CompletionTokens / decodeSeconds : 0);
    }
}
