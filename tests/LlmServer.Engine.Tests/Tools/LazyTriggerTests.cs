using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Tools;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Tools;

/// <summary>How the engine writes a lazy grammar's triggers for llama.cpp, on real vocabularies.</summary>
public sealed class LazyTriggerTests
{
    [Fact]
    public void A_special_token_marker_is_its_token_and_a_marker_of_several_tokens_is_a_pattern()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var vocabulary = new LlamaVocabulary(weights);
        var assistant = Assert.Single(vocabulary.Tokenize("<|assistant|>", addSpecial: false, parseSpecial: true));

        // Phi-3 writes <|assistant|> as one special token, and <tool_call> as text.
        var markers = new MarkerTokens(vocabulary);
        Assert.Equal(assistant, markers.TriggerToken("<|assistant|>"));
        Assert.Null(markers.TriggerToken("<tool_call>"));

        var written = LlmEngine.WithTriggersWritten(Lazy(["<|assistant|>", "<tool_call>"]), markers, splitReasoning: false, opensInPrompt: false);

        Assert.Equal([assistant], written.GrammarTriggerTokens);
        Assert.Equal(ToolGrammar.WholeText([@"\s*(\{)", ToolGrammar.WordPattern("<tool_call>")]), written.GrammarTriggers);
        Assert.Empty(written.GrammarTriggerWords);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Past_a_reasoning_block_a_marker_stays_a_pattern_anchored_after_it(bool opensInPrompt)
    {
        // A token fires anywhere, inside the block too: there the marker is a pattern that skips the block
        // (ReasoningStageTests and the real-model ToolEngineTests show it does).
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var vocabulary = new LlamaVocabulary(weights);

        var written = LlmEngine.WithTriggersWritten(Lazy(["<|assistant|>"]), new MarkerTokens(vocabulary), splitReasoning: true, opensInPrompt);

        Assert.Empty(written.GrammarTriggerTokens);
        Assert.Equal(ReasoningStage.AnchorTriggers([@"\s*(\{)", ToolGrammar.WordPattern("<|assistant|>")], opensInPrompt), written.GrammarTriggers);
    }

    [Fact]
    public void A_word_token_of_sentencepiece_is_the_word_without_the_space_before_a_text()
    {
        // Tokenized alone, "{" would be "▁{" or "▁" and "{" here: llama.cpp would feed the grammar " {", which it
        // refuses (the process aborts). As a continuation it is the token whose text is "{".
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Stories260K);
        var vocabulary = new LlamaVocabulary(weights);

        var markers = new MarkerTokens(vocabulary);
        var token = markers.TriggerToken("{");

        Assert.NotNull(token);
        Assert.Equal("{", System.Text.Encoding.UTF8.GetString(vocabulary.Utf8Of([token.Value])));

        // What ToolEngineTests' word triggers rely on: "{{" is no token here, so it stays a pattern.
        Assert.Null(markers.TriggerToken("{{"));
    }

    [Fact]
    public void Tool_grammars_name_their_markers_as_words()
    {
        var tool = new ToolDefinition("add", "Add.", null);
        string[] Words(ToolCallFormat format) => [.. ToolGrammar.Build(format, [tool], ToolChoice.Auto, parallelCalls: true)!.TriggerWords];

        Assert.Equal(["<tool_call>"], Words(ToolCallFormat.Hermes));
        Assert.Equal(["[TOOL_CALLS]"], Words(ToolCallFormat.Mistral));
        Assert.Equal(["[TOOL_CALLS]"], Words(ToolCallFormat.MistralNemo));
        Assert.Equal(["<|python_tag|>"], Words(ToolCallFormat.Llama3));
        Assert.Empty(Words(ToolCallFormat.Generic));
        Assert.Empty(ToolGrammar.Build(ToolCallFormat.Hermes, [tool], ToolChoice.Required, parallelCalls: true)!.TriggerWords);
    }

    private static GenerationRequest Lazy(IReadOnlyList<string> words) => new()
    {
        Prompt = "x",
        Grammar = "root ::= \"{\"",
        GrammarTriggers = [@"\s*(\{)"],
        GrammarTriggerWords = words,
    };
}
