using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Text;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Tools;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The markup a request's output is parsed by (a tool-call format's markers, the reasoning block's tags) as tokens
/// of the vocabulary. A model writes such a marker as one token where its vocabulary has it, often a control token
/// (Llama 3.1's <c>&lt;|python_tag|&gt;</c>, Mistral's <c>[TOOL_CALLS]</c>), which renders as nothing: those are
/// preserved, rendered as their text, so that the parsers see them (llama.cpp's server does so with a request's
/// preserved tokens). One per loaded vocabulary, which it tokenizes each marker of once: the markers are a small fixed
/// set (<see cref="ToolCallMarkers"/>), so what it holds stays small.
/// </summary>
internal sealed class MarkerTokens(ITokenVocabulary vocabulary)
{
    private readonly ConcurrentDictionary<(ToolCallFormat? Format, bool ThinkTags), FrozenSet<int>> _preserved = new();
    private readonly ConcurrentDictionary<string, int?> _triggerTokens = new(StringComparer.Ordinal);

    /// <summary>
    /// The tokens to preserve for output whose calls are in <paramref name="format"/> (null: no calls are parsed),
    /// with the reasoning block's tags where <paramref name="thinkTags"/>: those of the markers that are one token each.
    /// </summary>
    public FrozenSet<int> Preserved(ToolCallFormat? format, bool thinkTags) =>
        _preserved.GetOrAdd((format, thinkTags), static (key, vocabulary) => OneTokenWords(vocabulary, Words(key.Format, key.ThinkTags)), vocabulary);

    /// <summary>
    /// The token that is <paramref name="word"/>, if one is: a call's marker that the model writes as one special
    /// token (Qwen's <c>&lt;tool_call&gt;</c>, Mistral's <c>[TOOL_CALLS]</c>), as llama.cpp's server makes such a
    /// trigger word a trigger token. Only where the token's text is the word itself: llama.cpp feeds the grammar that
    /// text, and aborts the process on text the grammar refuses.
    /// </summary>
    public int? TriggerToken(string word) =>
        _triggerTokens.GetOrAdd(word, static (word, vocabulary) => TokenOf(vocabulary, word) is { } token && Spells(vocabulary, token, word) ? token : null, vocabulary);

    private static IEnumerable<string> Words(ToolCallFormat? format, bool thinkTags) =>
        (format is { } calls ? ToolCallMarkers.All(calls) : []).Concat(thinkTags ? [ReasoningStage.OpenTag, ReasoningStage.CloseTag] : []);

    /// <summary>
    /// The token that <paramref name="word"/> is, if it is one (as llama.cpp tells a preserved word). Tokenized as a
    /// continuation: no SentencePiece space before it.
    /// </summary>
    private static int? TokenOf(ITokenVocabulary vocabulary, string word) =>
        vocabulary.TokenizeContinuation(word, parseSpecial: true) is [var token] ? token : null;

    private static FrozenSet<int> OneTokenWords(ITokenVocabulary vocabulary, IEnumerable<string> words)
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
    private static bool Spells(ITokenVocabulary vocabulary, int token, string word)
    {
        Span<byte> buffer = stackalloc byte[TokenBytes.StackPiece];
        return vocabulary.PieceOf(token, buffer, special: true).SequenceEqual(Encoding.UTF8.GetBytes(word));
    }
}
