using System.Text;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Tests.Scheduling;
using LlmServer.Engine.Tools;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Tools;

/// <summary>
/// Markers a vocabulary holds as control tokens (llama.cpp's preserved tokens): on Phi-3's vocabulary, whose
/// <c>&lt;|assistant|&gt;</c> and <c>&lt;|end|&gt;</c> are control tokens, and through the scheduler to the tool-call
/// parser and the reasoning split.
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
    public void The_markers_of_one_token_are_the_requests_preserved_tokens_tokenized_once_a_model()
    {
        // The fake vocabulary holds [TOOL_CALLS], [ARGS] and the think tags as control tokens; [CALL_ID] and
        // <tool_call> are text there (several tokens): nothing to preserve, they render anyway.
        var vocabulary = new CountingVocabulary(new FakeBackend.CharVocabulary());
        var markers = new MarkerTokens(vocabulary);
        var request = new GenerationRequest { Prompt = "x" };
        int[] Preserved(ToolCallFormat? format, bool thinkTags) => [.. LlmEngine.WithPreservedTokens(request, markers, format, thinkTags).PreservedTokens.Order()];

        Assert.Equal([FakeBackend.CharVocabulary.ToolCalls, FakeBackend.CharVocabulary.Args], Preserved(ToolCallFormat.Mistral, thinkTags: false));
        Assert.Equal([FakeBackend.CharVocabulary.Think, FakeBackend.CharVocabulary.EndThink], Preserved(null, thinkTags: true));
        Assert.Equal([1, 2, 3, 4], Preserved(ToolCallFormat.Mistral, thinkTags: true));
        Assert.Empty(Preserved(ToolCallFormat.Hermes, thinkTags: false));
        Assert.Empty(Preserved(null, thinkTags: false));

        // Once a (format, think tags) and once a trigger word, whatever the requests that follow.
        var tokenized = vocabulary.Calls;
        Assert.Equal([1, 2], Preserved(ToolCallFormat.Mistral, thinkTags: false));
        Assert.Same(markers.Preserved(ToolCallFormat.Mistral, thinkTags: true), markers.Preserved(ToolCallFormat.Mistral, thinkTags: true));
        Assert.Equal(FakeBackend.CharVocabulary.ToolCalls, markers.TriggerToken("[TOOL_CALLS]"));
        var withTrigger = vocabulary.Calls;
        Assert.Equal(FakeBackend.CharVocabulary.ToolCalls, markers.TriggerToken("[TOOL_CALLS]"));
        Assert.Equal(tokenized + 1, withTrigger);
        Assert.Equal(withTrigger, vocabulary.Calls);

        // On Phi-3's vocabulary <think> is several tokens: nothing to preserve.
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        Assert.Empty(new MarkerTokens(new LlamaVocabulary(weights)).Preserved(null, thinkTags: true));
    }

    [Fact]
    public void A_trigger_token_is_preserved()
    {
        // llama.cpp feeds the grammar a trigger token's text (and refuses a trigger word not preserved): the output
        // must render it too, for the parser to see the call the grammar was woken for.
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var markers = new MarkerTokens(new LlamaVocabulary(weights));
        var request = new GenerationRequest { Prompt = "x", Grammar = "root ::= \"{\"", GrammarTriggerWords = ["<|assistant|>"] };

        var written = LlmEngine.WithTriggersWritten(request, markers, splitReasoning: false, opensInPrompt: false);
        var assistant = Assert.Single(written.GrammarTriggerTokens);

        Assert.Equal([assistant], LlmEngine.WithPreservedTokens(written, markers, format: null, thinkTags: false).PreservedTokens);
    }

    [Theory]
    [InlineData(ToolCallFormat.Generic)]
    [InlineData(ToolCallFormat.Hermes)]
    [InlineData(ToolCallFormat.Llama3)]
    [InlineData(ToolCallFormat.MistralNemo)]
    [InlineData(ToolCallFormat.Mistral)]
    [InlineData(ToolCallFormat.FunctionaryV32)]
    public void Every_trigger_word_of_a_tool_grammar_is_a_preserved_marker(ToolCallFormat format)
    {
        var tool = new ToolDefinition("add", "Add.", null);
        var words = ToolGrammar.Build(format, [tool], ToolChoice.Auto, parallelCalls: true)!.TriggerWords;

        Assert.All(words, word => Assert.Contains(word, ToolCallMarkers.All(format)));
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

        var markers = new MarkerTokens(vocabulary);
        Assert.Null(markers.TriggerToken("<|end|>\n"));
        Assert.Equal(end, markers.TriggerToken("<|end|>"));
        var written = LlmEngine.WithTriggersWritten(
            new GenerationRequest { Prompt = "x", Grammar = "root ::= \"{\"", GrammarTriggerWords = ["<|end|>\n"] }, markers, splitReasoning: false, opensInPrompt: false);
        Assert.Empty(written.GrammarTriggerTokens);
        Assert.Equal(ToolGrammar.WholeText([ToolGrammar.WordPattern("<|end|>\n")]), written.GrammarTriggers);
    }

    [Fact]
    public void Tool_calling_preserves_the_markers_its_parser_reads()
    {
        var tool = new ToolDefinition("add", "Add.", null);
        var request = new GenerationRequest { Messages = [new ChatTurn("user", "Add.")], Tools = [tool] };

        Assert.Equal(["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"], ToolCallMarkers.All(ToolCallFormat.Mistral));
        Assert.Equal(["<tool_call>", "</tool_call>"], ToolCallMarkers.All(ToolCallFormat.Hermes));
        Assert.Equal(["<|python_tag|>"], ToolCallMarkers.All(ToolCallFormat.Llama3));
        Assert.Empty(ToolCallMarkers.All(ToolCallFormat.Generic));

        // The engine preserves the markers of the format its stage parses: none where no call is parsed.
        Assert.Equal(ToolCallFormat.Mistral, new ToolCalling(ToolCallFormat.Mistral, templateRendersTools: true).Prepare(request)!.Stage!.Format);
        Assert.Equal(ToolCallFormat.Generic, new ToolCalling(ToolCallFormat.Mistral, templateRendersTools: false).Prepare(request)!.Stage!.Format);
        Assert.Null(new ToolCalling(ToolCallFormat.Mistral, templateRendersTools: true).Prepare(request with { ToolChoice = ToolChoice.None })?.Stage);
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
        var request = new GenerationRequest { Prompt = "x", MaxTokens = 16, SessionKey = "s" };

        var call = await RunAsync(harness, LlmEngine.WithPreservedTokens(request, new MarkerTokens(harness.Backend.Vocabulary), ToolCallFormat.Mistral, thinkTags: false), ParseMistralCalls);

        Assert.Equal(FinishReason.ToolCalls, call.Completion.FinishReason);
        Assert.Equal(string.Empty, call.Text);
        var made = Assert.Single(call.ToolCalls);
        Assert.Equal("f", made.Name);
        Assert.Equal("{}", made.Arguments);
        Assert.True(harness.Scheduler.TryGetResidentText("s", out var resident));
        Assert.Equal("x[TOOL_CALLS]f[ARGS]{}", resident.Text);

        // Not preserved, the control tokens are nothing: the parser sees no call.
        var unmarked = await RunAsync(harness, request with { SessionKey = null }, ParseMistralCalls);
        Assert.Equal("f{}", unmarked.Text);
        Assert.Empty(unmarked.ToolCalls);
    }

    [Fact]
    public async Task Think_tags_of_one_control_token_each_reach_the_reasoning_split()
    {
        // The fake vocabulary holds <think> and </think> as control tokens; the model writes <think>hm</think>ok.
        using var harness = new SchedulerHarness(slots: 1);
        harness.Backend.Next = token => token switch
        {
            'x' => FakeBackend.CharVocabulary.Think,
            FakeBackend.CharVocabulary.Think => 'h',
            'h' => 'm',
            'm' => FakeBackend.CharVocabulary.EndThink,
            FakeBackend.CharVocabulary.EndThink => 'o',
            'o' => 'k',
            _ => 0,
        };
        var request = new GenerationRequest { Prompt = "x", MaxTokens = 16 };
        static void Split(GenerationStream stream) => stream.SplitReasoning(new ReasoningStage(1, startsInside: false));

        var split = await RunAsync(harness, LlmEngine.WithPreservedTokens(request, new MarkerTokens(harness.Backend.Vocabulary), format: null, thinkTags: true), Split);

        Assert.Equal("hm", split.Reasoning);
        Assert.Equal("ok", split.Text);

        // Not preserved, the tags are nothing: no block to split off.
        var unmarked = await RunAsync(harness, request, Split);
        Assert.Null(unmarked.Reasoning);
        Assert.Equal("hmok", unmarked.Text);
    }

    private static void ParseMistralCalls(GenerationStream stream) => stream.ParseToolCalls(new ToolCallStage(1, ToolCallFormat.Mistral, ["f"], parallelCalls: true));

    private static async Task<GenerationChoiceResult> RunAsync(SchedulerHarness harness, GenerationRequest request, Action<GenerationStream> stages)
    {
        await using var stream = harness.Scheduler.Submit(request, harness.Backend.Vocabulary.Tokenize(request.Prompt!, false, false), request.Prompt, CancellationToken.None);
        stages(stream);
        harness.RunToIdle();
        return Assert.Single((await stream.CollectAsync()).Choices);
    }

    private static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    /// <summary>Counts the tokenizations of the vocabulary it wraps.</summary>
    private sealed class CountingVocabulary(ITokenVocabulary inner) : ITokenVocabulary
    {
        public int Calls { get; private set; }

        public int Count => inner.Count;

        public bool AddBos => inner.AddBos;

        public TokenCountBound Bound => inner.Bound;

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
        {
            Calls++;
            return inner.Tokenize(text, addSpecial, parseSpecial);
        }

        public int[] TokenizeContinuation(string text, bool parseSpecial)
        {
            Calls++;
            return inner.TokenizeContinuation(text, parseSpecial);
        }

        public int TokenToBytes(int token, Span<byte> destination, bool special) => inner.TokenToBytes(token, destination, special);

        public bool IsEndOfGeneration(int token) => inner.IsEndOfGeneration(token);
    }
}
