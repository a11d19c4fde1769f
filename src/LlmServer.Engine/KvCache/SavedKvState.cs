namespace LlmServer.Engine.KvCache;

/// <summary>One sequence's KV state as llama.cpp wrote it, and the tokens its cells hold (positions 0 to n-1).</summary>
internal sealed record SavedKvState(string SessionKey, int[] Tokens, byte[] State);
