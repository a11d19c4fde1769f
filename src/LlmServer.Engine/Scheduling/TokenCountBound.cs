using System.Text;
using LLama;
using LLama.Native;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// A lower bound on a text's token count that costs one pass over its UTF-8 length, not a tokenization: no token
/// covers more of the text than the longest piece in the vocabulary, so a text of B bytes has at least
/// ceil(B / longest) tokens (B leaves out what a tokenizer may drop or fold: see <see cref="CoveredBytes"/>). It lets the engine refuse a prompt far past the context at once (tokenizing megabytes
/// takes tens of seconds of CPU) with a message that stays true ("at least N tokens").
/// </summary>
/// <remarks>
/// Only for tokenizers that keep every byte of the text (SentencePiece, byte-level BPE, RWKV): WordPiece drops
/// whitespace and Unigram normalizes it away, so a text there may have fewer tokens than the bound; for those the
/// bound is 0 and the text is tokenized as before.
/// </remarks>
internal sealed class TokenCountBound
{
    /// <summary>The bound for vocabularies it does not hold for: every text "has at least 0 tokens".</summary>
    public static readonly TokenCountBound None = new(0);

    // An unknown character may come out as one token whatever its length: a UTF-8 scalar is at most 4 bytes.
    private const int LongestScalarBytes = 4;

    private const int SentencePieceSpace = 0x2581;

    private TokenCountBound(int longestTokenBytes) => LongestTokenBytes = longestTokenBytes;

    /// <summary>The most bytes of text one token covers (0: no bound).</summary>
    public int LongestTokenBytes { get; }

    /// <summary>A bound with a known longest token (tests, and vocabularies that are not llama.cpp's).</summary>
    public static TokenCountBound WithLongestToken(int bytes) => new(Math.Max(bytes, LongestScalarBytes));

    /// <summary>Reads every token's piece once (at model load): special tokens as text, since a prompt may spell them.</summary>
    public static TokenCountBound Of(LLamaWeights weights)
    {
        var vocab = weights.Vocab;
        if (vocab.Type is not (LLamaVocabType.SentencePiece or LLamaVocabType.BytePairEncoding or LLamaVocabType.RWKV))
        {
            return None;
        }

        Span<byte> piece = stackalloc byte[256];
        var longest = 0;
        for (var token = 0; token < vocab.Count; token++)
        {
            // The size comes back even when the piece does not fit the buffer.
            longest = Math.Max(longest, (int)weights.NativeHandle.TokenToSpan(token, piece, 0, true));
        }

        return WithLongestToken(longest);
    }

    /// <summary>The fewest tokens <paramref name="text"/> can have (0 when there is no bound).</summary>
    public int MinimumTokens(string text) =>
        LongestTokenBytes == 0 ? 0 : (int)((CoveredBytes(text) + (long)LongestTokenBytes - 1) / LongestTokenBytes);

    /// <summary>
    /// The bytes of the text some token must cover. Whitespace is left out: special tokens that strip it (all of
    /// Phi-3's) turn any run of it into no tokens. A U+2581 counts as one byte: SentencePiece reads it as the space it
    /// writes pieces with, so a piece of 16 of them (16 bytes as text) covers 48 bytes of a prompt that spells them.
    /// </summary>
    private static long CoveredBytes(string text)
    {
        long bytes = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            bytes += Rune.IsWhiteSpace(rune) ? 0 : rune.Value == SentencePieceSpace ? 1 : rune.Utf8SequenceLength;
        }

        return bytes;
    }
}
