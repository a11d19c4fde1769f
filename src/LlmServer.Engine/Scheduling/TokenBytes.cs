using System.Buffers;

namespace LlmServer.Engine.Scheduling;

/// <summary>The one way from token ids to the UTF-8 bytes they stand for.</summary>
internal static class TokenBytes
{
    /// <summary>The most bytes one token's piece may take; a longer piece is cut.</summary>
    private const int MaxPerToken = 256;

    /// <summary>The tokens' bytes, one piece after another (control tokens render as nothing).</summary>
    public static byte[] Utf8Of(this ITokenVocabulary vocabulary, ReadOnlySpan<int> tokens)
    {
        var bytes = new ArrayBufferWriter<byte>(Math.Max(1, tokens.Length * 4));
        Span<byte> piece = stackalloc byte[MaxPerToken];
        foreach (var token in tokens)
        {
            var length = Math.Clamp(vocabulary.TokenToBytes(token, piece), 0, MaxPerToken);
            bytes.Write(piece[..length]);
        }

        return bytes.WrittenSpan.ToArray();
    }
}
