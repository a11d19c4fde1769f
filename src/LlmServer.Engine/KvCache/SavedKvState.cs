namespace LlmServer.Engine.KvCache;

/// <summary>
/// One sequence's KV state as llama.cpp wrote it, the tokens its cells hold (positions 0 to n-1), and the text those
/// tokens stand for when known (so the session's next prompt is tokenized onto exactly these tokens).
/// </summary>
internal sealed record SavedKvState(string SessionKey, int[] Tokens, byte[] State, string? Text = null, Scheduling.TextTokenBoundary[]? TextBoundaries = null)
{
    public Scheduling.TextTokenBoundary[] Boundaries => TextBoundaries ?? [];
}
