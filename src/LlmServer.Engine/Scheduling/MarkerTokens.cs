using System.Collections.Frozen;
using System.Text;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The markup a request's output is parsed by (a tool-call format's markers, the reasoning block's tags) as tokens
/// of the vocabulary. A model writes such a marker as one token where its vocabulary has it, often a control token
/// (Llama 3.1's <c>&lt;|python_tag|&gt;</c>, Mistral's <c>[TOOL_CALLS]</c>), which renders as nothing: those are
/// preserved, rendered as their text, so that the parsers see them (llama.cpp's server does so with a request's
/// preserved tokens).
/// </summary>
internal static class MarkerTokens
{
    /// <summary>
    /// The token that <paramref name="word"/> is in <paramref name="vocabulary"/>, if it is one (as llama.cpp tells a
    /// preserved word). Tokenized as a continuation: no SentencePiece space before it.
    /// </summary>
    public static int? TokenOf(ITokenVocabulary vocabulary, string word) =>
        vocabulary.TokenizeContinuation(word, parseSpecial: true) is [var token] ? token : null;

    /// <summary>The tokens of those of <paramref name="words"/> that are one token each.</summary>
    public static FrozenSet<int> Preserved(ITokenVocabulary vocabulary, IEnumerable<string> words)
    {
        var tokens = new List<int>();
        foreach (var word in words)
        {
            if (TokenOf(vocabulary, word) is { } token)
            {
                tokens.Add(token);
            }
        }

        return tokens.Count == 0 ? FrozenSet<int>.Empty : tokens.ToFrozenSet();
    }

    /// <summary>
    /// Whether <paramref name="token"/>, rendered as text (as llama.cpp feeds a grammar), is exactly
    /// <paramref name="word"/>: a token can stand for more text than its own (one that strips the whitespace after it).
    /// </summary>
    public static bool Spells(ITokenVocabulary vocabulary, int token, string word)
    {
        Span<byte> buffer = stackalloc byte[TokenBytes.StackPiece];
        return vocabulary.PieceOf(token, buffer, special: true).SequenceEqual(Encoding.UTF8.GetBytes(word));
    }
}
