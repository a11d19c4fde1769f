using System.Text.RegularExpressions;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Tests.Grammars;
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

    private static readonly ToolDefinition Add = new(
        "add", "Add.", System.Text.Json.JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}""").RootElement);

    /// <summary>Format, parallel calls, the answer so far, and what llama.cpp would feed the grammar (null: it sleeps on).</summary>
    public static TheoryData<ToolCallFormat, bool, string, string?> Answers => new()
    {
        // The common case: "{" or "{\"" opening the answer wakes it.
        { ToolCallFormat.Llama3, false, "{", "{" },
        { ToolCallFormat.Llama3, false, " \n{", "{" },
        { ToolCallFormat.Llama3, false, "{\"", "{\"" },
        { ToolCallFormat.Llama3, false, "{ \"na", "{ \"na" },
        { ToolCallFormat.Llama3, false, "{\"name\": \"", "{\"name\": \"" },
        { ToolCallFormat.Llama3, false, "{\"name\":\"", "{\"name\":\"" },

        // A first token that no call continues: text (fed, the grammar would refuse it and llama.cpp abort).
        { ToolCallFormat.Llama3, false, "{}", null },
        { ToolCallFormat.Llama3, false, " {{", null },
        { ToolCallFormat.Llama3, false, "{%", null },
        { ToolCallFormat.Llama3, false, "{\n", null },
        { ToolCallFormat.Llama3, false, "{  \"", null },
        { ToolCallFormat.Llama3, false, "{\"city", null },
        { ToolCallFormat.Llama3, false, "Sure: {", null },

        // Past the opening: the grammar woke at an earlier token, or the answer is text for good.
        { ToolCallFormat.Llama3, false, "{\"name\": \"add", null },
        { ToolCallFormat.Llama3, false, "{}{\"", null },

        { ToolCallFormat.Generic, false, "{", "{" },
        { ToolCallFormat.Generic, false, "{\"tool_call\": {", "{\"tool_call\": {" },
        { ToolCallFormat.Generic, false, "{\"tool_calls", null },
        { ToolCallFormat.Generic, true, "{\"tool_calls\":[", "{\"tool_calls\":[" },
        { ToolCallFormat.Generic, true, "{\"tool_call\"", null },
        { ToolCallFormat.Generic, true, "{\"response\": \"", "{\"response\": \"" },
        { ToolCallFormat.Generic, true, "{\"response\": \"Hi", null },
        { ToolCallFormat.Generic, true, "{}", null },

        // Functionary: the name and its newline, nothing after (the arguments follow the tool's schema).
        { ToolCallFormat.FunctionaryV32, true, "add\n", "add\n" },
        { ToolCallFormat.FunctionaryV32, true, "all\nSure.>>>add\n", "add\n" },
        { ToolCallFormat.FunctionaryV32, true, "add\n\n", null },
        { ToolCallFormat.FunctionaryV32, true, "add\n{", null },
        { ToolCallFormat.FunctionaryV32, true, "addition\n", null },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public void A_pattern_wakes_the_grammar_only_on_text_it_accepts(ToolCallFormat format, bool parallel, string answer, string? fed)
    {
        var grammar = ToolGrammar.Build(format, [Add], ToolChoice.Auto, parallel)!;
        var matcher = new GbnfMatcher(grammar.Grammar);

        // Without a reasoning block and past one, as the engine writes them.
        foreach (var (patterns, before) in new[] { (ToolGrammar.WholeText(grammar.TriggerPatterns), ""), (ReasoningStage.AnchorTriggers(grammar.TriggerPatterns, opensInPrompt: false), "<think>Use {}.</think>\n") })
        {
            var pattern = Assert.Single(patterns);
            Assert.Equal(fed, Fed(pattern, before + answer));
            Assert.True(fed is null || matcher.Begins(fed), fed);
        }
    }

    [Theory]
    [InlineData(ToolCallFormat.Llama3, false, "{\"name\": \"add\", \"parameters\": {\"a\": 2, \"b\": 3}}")]
    [InlineData(ToolCallFormat.Generic, false, "{\"tool_call\": {\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}}")]
    [InlineData(ToolCallFormat.Generic, true, "{ \"tool_calls\": [{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}]}")]
    [InlineData(ToolCallFormat.Generic, true, "{\"response\": \"Hi.\"}")]
    public void Whatever_token_completes_the_match_the_grammar_is_fed_text_it_accepts(ToolCallFormat format, bool parallel, string call)
    {
        var grammar = ToolGrammar.Build(format, [Add], ToolChoice.Auto, parallel)!;
        var matcher = new GbnfMatcher(grammar.Grammar);
        var pattern = Assert.Single(ToolGrammar.WholeText(grammar.TriggerPatterns));
        Assert.True(matcher.Matches(call), call);

        // The first token could end anywhere in the call, or add a character no call takes there: each text it
        // could make either wakes the grammar on text the grammar accepts, or leaves it asleep.
        var woken = 0;
        for (var end = 1; end <= call.Length; end++)
        {
            foreach (var text in new[] { call[..end], call[..end] + "}", call[..end] + "\n", call[..end] + "{" })
            {
                if (Fed(pattern, text) is { } fed)
                {
                    Assert.True(matcher.Begins(fed), fed);
                    woken++;
                }
            }
        }

        Assert.Equal("{", Fed(pattern, "{"));
        Assert.True(woken > 3, $"{woken}");
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

    /// <summary>
    /// What llama.cpp feeds the grammar when <paramref name="pattern"/> (written whole) matches <paramref name="text"/>:
    /// from the first non-empty capture group to the end; null when it does not match. ECMAScript's <c>$</c> is the
    /// text's end only, where .NET's also matches before a last newline: the match must take the whole text.
    /// </summary>
    private static string? Fed(string pattern, string text)
    {
        var match = Regex.Match(text, pattern);
        return match.Success && match.Length == text.Length ? text[match.Groups.Cast<Group>().Skip(1).First(g => g.Success && g.Length > 0).Index..] : null;
    }

    private static GenerationRequest Lazy(IReadOnlyList<string> words) => new()
    {
        Prompt = "x",
        Grammar = "root ::= \"{\"",
        GrammarTriggers = [@"\s*(\{)"],
        GrammarTriggerWords = words,
    };
}
