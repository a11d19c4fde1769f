using LlmServer.Engine.Generation;

namespace LlmServer.OpenAi;

/// <summary>Engine log-probabilities in the two OpenAI layouts: chat's entries and legacy completions' arrays.</summary>
internal static class OpenAiLogProbs
{
    public static List<TokenLogProbEntry> ToChat(IReadOnlyList<TokenLogProb> tokens)
    {
        var entries = new List<TokenLogProbEntry>(tokens.Count);
        foreach (var token in tokens)
        {
            var top = new TopLogProbEntry[token.TopLogProbs.Count];
            for (var i = 0; i < top.Length; i++)
            {
                var alternative = token.TopLogProbs[i];
                top[i] = new TopLogProbEntry(alternative.Token, alternative.LogProb, Bytes(alternative.Bytes));
            }

            entries.Add(new TokenLogProbEntry(token.Token, token.LogProb, Bytes(token.Bytes), top));
        }

        return entries;
    }

    /// <summary>The legacy layout; <paramref name="textOffset"/> is where the first token starts in the choice's text.</summary>
    public static CompletionLogProbs ToCompletion(IReadOnlyList<TokenLogProb> tokens, ref int textOffset)
    {
        var texts = new List<string>(tokens.Count);
        var logProbs = new List<float>(tokens.Count);
        var tops = new List<Dictionary<string, float>>(tokens.Count);
        var offsets = new List<int>(tokens.Count);
        foreach (var token in tokens)
        {
            texts.Add(token.Token);
            logProbs.Add(token.LogProb);
            var top = new Dictionary<string, float>(token.TopLogProbs.Count, StringComparer.Ordinal);
            foreach (var alternative in token.TopLogProbs)
            {
                top.TryAdd(alternative.Token, alternative.LogProb);
            }

            tops.Add(top);
            offsets.Add(textOffset);
            textOffset += token.Token.Length;
        }

        return new CompletionLogProbs(texts, logProbs, tops, offsets);
    }

    /// <summary>OpenAI sends bytes as a list of integers (a byte[] would serialize as base64).</summary>
    private static int[] Bytes(byte[] bytes) => Array.ConvertAll(bytes, b => (int)b);
}
