using System.Text;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Tests.Scheduling;
using LlmServer.Engine.Tools;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Tools;

/// <summary>
/// Markers a vocabulary holds as control tokens (llama.cpp's preserved tokens): on Phi-3's vocabulary, whose
/// <c>&lt;|assistant|&gt;</c> and <c>&lt;|end|&gt;</c> are control tokens, and through the scheduler to the parser.
/// </summary>
public sealed class MarkerTokenTests
{
    [Fact]
    public void A_control_token_renders_as_its_text_only_where_preserved()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var vocabulary = new LlamaVocabulary(weights);
        var assistant = Assert.Single(vocabulary.Tokenize("<|assistant|>", addSpecial: false, parseSpecial: true));
        var end = Assert.Single(vocabulary.Tokenize("<|end|>", addSpecial: false, parseSpecial: true));
        int[] tokens = [.. vocabulary.Tokenize("Hi", addSpecial: false, parseSpecial: false), assistant, .. vocabulary.TokenizeContinuation("é", parseSpecial: false), end];

        var plain = Text(vocabulary.Utf8Of(tokens));
        var preserved = Text(vocabulary.Utf8Of(tokens, [assistant]));

        Assert.Equal(plain.Replace("é", "<|assistant|>é", StringComparison.Ordinal), preserved);
        Assert.DoesNotContain("<|", plain, StringComparison.Ordinal);
        Assert.DoesNotContain("<|end|>", preserved, StringComparison.Ordinal);
    }

    [Fact]
    public void Preserved_words_of_one_token_become_the_requests_tokens()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var vocabulary = new LlamaVocabulary(weights);
        var assistant = Assert.Single(vocabulary.Tokenize("<|assistant|>", addSpecial: false, parseSpecial: true));
        var end = Assert.Single(vocabulary.Tokenize("<|end|>", addSpecial: false, parseSpecial: true));
        var request = new GenerationRequest { Prompt = "x", PreservedWords = ["<|assistant|>", "<tool_call>", "<|end|>"] };

        // <tool_call> is text in this vocabulary (several tokens): nothing to preserve, it renders anyway.
        Assert.Equal([assistant, end], LlmEngine.WithPreservedTokens(request, vocabulary, thinkTags: false).PreservedTokens.Order());
        Assert.Empty(LlmEngine.WithPreservedTokens(new GenerationRequest { Prompt = "x" }, vocabulary, thinkTags: true).PreservedTokens);
    }

    [Fact]
    public void A_token_whose_text_is_not_exactly_the_word_is_no_trigger_token()
    {
        // Phi-3's special tokens strip the whitespace after them: "<|end|>\n" is the one token <|end|>, whose text
        // llama.cpp would feed the grammar in place of the word (missing its newline). So the word stays a pattern.
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var vocabulary = new LlamaVocabulary(weights);
        var end = Assert.Single(vocabulary.Tokenize("<|end|>", addSpecial: false, parseSpecial: true));
        Assert.Equal([end], vocabulary.TokenizeContinuation("<|end|>\n", parseSpecial: true));

        Assert.Null(ToolGrammar.TriggerToken(vocabulary, "<|end|>\n"));
        Assert.Equal(end, ToolGrammar.TriggerToken(vocabulary, "<|end|>"));
        var written = LlmEngine.WithTriggersWritten(
            new GenerationRequest { Prompt = "x", Grammar = "root ::= \"{\"", GrammarTriggerWords = ["<|end|>\n"] }, vocabulary, splitReasoning: false, opensInPrompt: false);
        Assert.Empty(written.GrammarTriggerTokens);
        Assert.Equal(ToolGrammar.WholeText([ToolGrammar.WordPattern("<|end|>\n")]), written.GrammarTriggers);
    }

    [Fact]
    public void Tool_calling_preserves_the_markers_its_parser_reads()
    {
        var tool = new ToolDefinition("add", "Add.", null);
        var request = new GenerationRequest { Messages = [new ChatTurn("user", "Add.")], Tools = [tool] };

        Assert.Equal(["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"], new ToolCalling(ToolCallFormat.Mistral, templateRendersTools: true).Prepare(request)!.Request.PreservedWords);
        Assert.Equal(["<|python_tag|>"], new ToolCalling(ToolCallFormat.Llama3, templateRendersTools: true).Prepare(request)!.Request.PreservedWords);
        Assert.Empty(new ToolCalling(ToolCallFormat.Mistral, templateRendersTools: true).Prepare(request with { ToolChoice = ToolChoice.None })?.Request.PreservedWords ?? []);
        Assert.Empty(new ToolCalling(ToolCallFormat.Generic, templateRendersTools: false).Prepare(request)!.Request.PreservedWords);
    }

    [Fact]
    public async Task Control_token_markers_reach_the_parser_as_a_call_and_the_sessions_text_as_written()
    {
        // The fake vocabulary holds [TOOL_CALLS] and [ARGS] as control tokens, as Mistral's does; the model writes
        // [TOOL_CALLS]f[ARGS]{} in four tokens and ends.
        using var harness = new SchedulerHarness(slots: 2);
        harness.Backend.Next = token => token switch
        {
            'x' => FakeBackend.CharVocabulary.ToolCalls,
            FakeBackend.CharVocabulary.ToolCalls => 'f',
            'f' => FakeBackend.CharVocabulary.Args,
            FakeBackend.CharVocabulary.Args => '{',
            '{' => '}',
            _ => 0,
        };
        var request = new GenerationRequest { Prompt = "x", MaxTokens = 16, SessionKey = "s", PreservedWords = ToolCallFormats.Markers(ToolCallFormat.Mistral) };

        var call = await RunAsync(harness, LlmEngine.WithPreservedTokens(request, harness.Backend.Vocabulary, thinkTags: false));

        Assert.Equal(FinishReason.ToolCalls, call.Completion.FinishReason);
        Assert.Equal(string.Empty, call.Text);
        var made = Assert.Single(call.ToolCalls);
        Assert.Equal("f", made.Name);
        Assert.Equal("{}", made.Arguments);
        Assert.True(harness.Scheduler.TryGetResidentText("s", out var resident));
        Assert.Equal("x[TOOL_CALLS]f[ARGS]{}", resident.Text);

        // Not preserved, the control tokens are nothing: the parser sees no call.
        var unmarked = await RunAsync(harness, request with { SessionKey = null });
        Assert.Equal("f{}", unmarked.Text);
        Assert.Empty(unmarked.ToolCalls);
    }

    private static async Task<GenerationChoiceResult> RunAsync(SchedulerHarness harness, GenerationRequest request)
    {
        await using var stream = harness.Scheduler.Submit(request, harness.Backend.Vocabulary.Tokenize(request.Prompt!, false, false), request.Prompt, CancellationToken.None);
        stream.ParseToolCalls(new ToolCallStage(1, ToolCallFormat.Mistral, ["f"], parallelCalls: true));
        harness.RunToIdle();
        return Assert.Single((await stream.CollectAsync()).Choices);
    }

    private static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
