using LLama;
using LLama.Common;
using LlmServer.Engine.Scheduling;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>Tokenizing a prompt in pieces, with the real SentencePiece vocabularies that put a space before a text.</summary>
public sealed class LlamaVocabularyTests
{
    public static TheoryData<string> Models => new() { "stories260K.gguf", "llama-2-tiny-random.gguf" };

    [Theory]
    [MemberData(nameof(Models))]
    public void A_continuation_gets_the_tokens_it_has_inside_the_whole_text(string model)
    {
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(TestModels.Find(model)) { VocabOnly = true });
        var vocabulary = new LlamaVocabulary(weights);
        const string first = "Short stories for children.\n\nUser: Tom had a red ball.\nAssistant: He played.";
        const string next = "\nUser: One day the ball rolled away.\nAssistant:";

        var whole = vocabulary.Tokenize(first + next, addSpecial: true, parseSpecial: false);
        int[] pieces = [.. vocabulary.Tokenize(first, addSpecial: true, parseSpecial: false), .. vocabulary.TokenizeContinuation(next, parseSpecial: false)];
        Assert.Equal(whole, pieces);

        // Tokenized alone, the same text starts with the space SentencePiece adds: a token the whole text has not.
        Assert.NotEqual(whole, [.. vocabulary.Tokenize(first, addSpecial: true, parseSpecial: false), .. vocabulary.Tokenize(next, addSpecial: false, parseSpecial: false)]);
    }
}
