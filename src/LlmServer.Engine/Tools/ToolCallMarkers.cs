namespace LlmServer.Engine.Tools;

/// <summary>
/// The markers of each <see cref="ToolCallFormat"/>'s calls, the one table that the grammar (<see cref="ToolGrammar"/>),
/// its trigger words, the parser (<see cref="ToolCallParser"/>) and the preserved tokens
/// (<see cref="Scheduling.MarkerTokens"/>) are written from: llama.cpp refuses a trigger word that is not preserved.
/// </summary>
internal static class ToolCallMarkers
{
    public const string HermesOpen = "<tool_call>";
    public const string HermesClose = "</tool_call>";
    public const string PythonTag = "<|python_tag|>";
    public const string ToolCalls = "[TOOL_CALLS]";
    public const string Args = "[ARGS]";
    public const string CallId = "[CALL_ID]";
    public const string Recipient = ">>>";

    /// <summary>The marker that opens a call anywhere in the answer; none where a call is JSON at the answer's start.</summary>
    public static string? Opening(ToolCallFormat format) => format switch
    {
        ToolCallFormat.Hermes => HermesOpen,
        ToolCallFormat.Llama3 => PythonTag,
        ToolCallFormat.Mistral or ToolCallFormat.MistralNemo => ToolCalls,
        ToolCallFormat.FunctionaryV32 => Recipient,
        _ => null,
    };

    /// <summary>The marker that closes a call, where the format writes one.</summary>
    public static string? Closing(ToolCallFormat format) => format == ToolCallFormat.Hermes ? HermesClose : null;

    /// <summary>
    /// Every marker the format's calls are parsed by, which a vocabulary may hold as control tokens: the output
    /// renders those as text, as llama.cpp preserves them.
    /// </summary>
    public static IReadOnlyList<string> All(ToolCallFormat format)
    {
        string?[] markers = format == ToolCallFormat.Mistral ? [ToolCalls, Args, CallId] : [Opening(format), Closing(format)];
        return [.. markers.OfType<string>()];
    }
}
