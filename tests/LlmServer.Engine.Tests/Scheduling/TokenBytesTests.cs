using System.Text;
using LLama;
using LLama.Common;
using LlmServer.Engine.Scheduling;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>Token pieces longer than the stack buffer, and the LLamaSharp behaviour the reading relies on.</summary>
public sealed class TokenBytesTests
{
    [Fact]
    public void A_piece_longer_than_the_stack_buffer_comes_out_whole()
    {
        var vocabulary = new LongPieceVocabulary();

        var bytes = vocabulary.Utf8Of([1, LongPieceVocabulary.Long, 2]);

        Assert.Equal("a" + LongPieceVocabulary.LongText + "b", Encoding.UTF8.GetString(bytes));
    }

    [Fact]
    public void PieceOf_reads_a_long_piece_into_its_own_array()
    {
        Span<byte> buffer = stackalloc byte[TokenBytes.StackPiece];

        var piece = new LongPieceVocabulary().PieceOf(LongPieceVocabulary.Long, buffer);

        Assert.Equal(LongPieceVocabulary.LongText, Encoding.UTF8.GetString(piece));
    }

    [Fact]
    public void LLamaSharp_writes_nothing_into_a_short_buffer_and_returns_the_length_it_needs()
    {
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(TestModels.Find("llama-2-tiny-random.gguf")) { VocabOnly = true });
        var vocabulary = new LlamaVocabulary(weights);
        Span<byte> whole = stackalloc byte[TokenBytes.StackPiece];
        var token = vocabulary.Tokenize("Once upon a time the children played", addSpecial: false, parseSpecial: false)
            .First(t => vocabulary.TokenToBytes(t, new byte[TokenBytes.StackPiece], special: false) > 1);
        var length = vocabulary.TokenToBytes(token, whole, special: false);

        Span<byte> tooShort = [0xEE];
        Assert.Equal(length, vocabulary.TokenToBytes(token, tooShort, special: false));
        Assert.Equal(0xEE, tooShort[0]);
        Assert.Equal(whole[..length].ToArray(), vocabulary.PieceOf(token, tooShort).ToArray());
    }

    /// <summary>Answers as LLamaSharp does: a buffer too small for the piece gets nothing, and the length needed is returned.</summary>
    private sealed class LongPieceVocabulary : ITokenVocabulary
    {
        public const int Long = 7;
        public static readonly string LongText = string.Concat(Enumerable.Repeat("é-long-piece ", 40));

        public int Count => 8;

        public bool AddBos => false;

        public TokenCountBound Bound => TokenCountBound.None;

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial) => throw new NotSupportedException();

        public int[] TokenizeContinuation(string text, bool parseSpecial) => throw new NotSupportedException();

        public int TokenToBytes(int token, Span<byte> destination, bool special)
        {
            var piece = Encoding.UTF8.GetBytes(token switch { Long => LongText, 1 => "a", _ => "b" });
            if (piece.Length <= destination.Length)
            {
                piece.CopyTo(destination);
            }

            return piece.Length;
        }

        public bool IsEndOfGeneration(int token) => false;
    }
}
