using System.Buffers;
using System.Collections.Frozen;

namespace LlmServer.Engine.Scheduling;

/// <summary>The one way from token ids to the UTF-8 bytes they stand for.</summary>
internal static class TokenBytes
{
    /// <summary>The stack buffer one token's piece is first written into; a longer piece asks again with room for it.</summary>
    public const int StackPiece = 256;

    /// <summary>
    /// The tokens' bytes, one piece after another: control tokens render as nothing, but those in
    /// <paramref name="preserved"/> (a request's markers, see <see cref="MarkerTokens"/>) as their text, and all of
    /// them where <paramref name="special"/>.
    /// </summary>
    public static byte[] Utf8Of(this ITokenVocabulary vocabulary, ReadOnlySpan<int> tokens, FrozenSet<int>? preserved = null, bool special = false)
    {
        var bytes = new ArrayBufferWriter<byte>(Math.Max(1, tokens.Length * 4));
        Span<byte> buffer = stackalloc byte[StackPiece];
        foreach (var token in tokens)
        {
            bytes.Write(vocabulary.PieceOf(token, buffer, special || preserved?.Contains(token) == true));
        }

        return bytes.WrittenSpan.ToArray();
    }

    /// <summary>
    /// One token's bytes (a control token's text only when <paramref name="special"/>), in <paramref name="buffer"/>
    /// when they fit; a longer piece (LLamaSharp writes nothing then and returns the size it needs) is written again
    /// into an array of its size.
    /// </summary>
    public static ReadOnlySpan<byte> PieceOf(this ITokenVocabulary vocabulary, int token, Span<byte> buffer, bool special = false)
    {
        var length = vocabulary.TokenToBytes(token, buffer, special);
        if (length <= buffer.Length)
        {
            return buffer[..Math.Max(0, length)];
        }

        var piece = new byte[length];
        return piece.AsSpan(0, Math.Clamp(vocabulary.TokenToBytes(token, piece, special), 0, length));
    }
}
