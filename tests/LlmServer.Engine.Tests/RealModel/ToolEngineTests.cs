using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Tools;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>Tool calling and lazy grammars through the real engine on stories260K (the generic JSON form).</summary>
public sealed class ToolEngineTests(StoriesEngineFixture fixture) : IClassFixture<StoriesEngineFixture>
{
    private const string Prompt = "Once upon a time";

    private static readonly ToolDefinition Add = new(
        "add",
        "Add two digits.",
        JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"integer","minimum":0,"maximum":9},"b":{"type":"integer","minimum":0,"maximum":9}},"required":["a","b"]}""").RootElement);

    private LlmEngine Engine => fixture.Engine;

    [Fact]
    public async Task A_lazy_grammar_leaves_text_free_until_its_trigger()
    {
        var free = await TextAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 24, Sampling = new() { Temperature = 0 } });
        var lazy = await TextAsync(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 24,
            Sampling = new() { Temperature = 0 },
            Grammar = JsonGrammar.AnyObject,
            GrammarTriggers = [@"\s*(\{)"],
        });

        Assert.Equal(free, lazy);
    }

    [Fact]
    public async Task A_lazy_grammar_constrains_from_its_trigger_on()
    {
        // Biased to write '{' forever: the first one triggers the grammar, which allows no second one.
        var brace = Enumerable.Range(0, Engine.Model!.VocabularySize).Single(t => Engine.Detokenize([t]) == "{");
        var sampling = new SamplingOptions { Temperature = 0, LogitBias = new Dictionary<int, float> { [brace] = 100 } };
        var unconstrained = await TextAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 3, Sampling = sampling });
        var lazy = await TextAsync(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 3,
            Sampling = sampling,
            Grammar = JsonGrammar.AnyObject,
            GrammarTriggers = [@"\s*(\{)"],
        });

        Assert.Equal("{{{", unconstrained);
        Assert.StartsWith("{", lazy, StringComparison.Ordinal);
        Assert.DoesNotContain("{{", lazy, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_trigger_anchored_after_reasoning_fires_only_past_the_block()
    {
        // Biased to write '{' forever: with the block open (the prompt opened it, no closing tag comes) the call's
        // opening is reasoning and the grammar stays asleep; in an answer with no block it still wakes on the first.
        var brace = Enumerable.Range(0, Engine.Model!.VocabularySize).Single(t => Engine.Detokenize([t]) == "{");
        var sampling = new SamplingOptions { Temperature = 0, LogitBias = new Dictionary<int, float> { [brace] = 100 } };
        string[] triggers = [@"\s*(\{)"];
        var insideBlock = await TextAsync(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 3,
            Sampling = sampling,
            Grammar = JsonGrammar.AnyObject,
            GrammarTriggers = ReasoningStage.AnchorTriggers(triggers, opensInPrompt: true),
        });
        var noBlock = await TextAsync(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 3,
            Sampling = sampling,
            Grammar = JsonGrammar.AnyObject,
            GrammarTriggers = ReasoningStage.AnchorTriggers(triggers, opensInPrompt: false),
        });

        Assert.Equal("{{{", insideBlock);
        Assert.StartsWith("{", noBlock, StringComparison.Ordinal);
        Assert.DoesNotContain("{{", noBlock, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_trigger_word_that_is_one_token_fires_on_it_and_one_of_several_tokens_as_text()
    {
        // "{" is one token of this vocabulary, "{{" two: the engine makes the first a trigger token, the second a
        // pattern (its escaping read by llama.cpp's std::regex). Each wakes the grammar on the text it names.
        var brace = Enumerable.Range(0, Engine.Model!.VocabularySize).Single(t => Engine.Detokenize([t]) == "{");
        var sampling = new SamplingOptions { Temperature = 0, LogitBias = new Dictionary<int, float> { [brace] = 100 } };
        var onToken = await TextAsync(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 3,
            Sampling = sampling,
            Grammar = JsonGrammar.AnyObject,
            GrammarTriggerWords = ["{"],
        });
        var onText = await TextAsync(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 4,
            Sampling = sampling,
            Grammar = """root ::= "{{" [a-z ]*""",
            GrammarTriggerWords = ["{{"],
        });

        Assert.StartsWith("{", onToken, StringComparison.Ordinal);
        Assert.DoesNotContain("{{", onToken, StringComparison.Ordinal);
        Assert.StartsWith("{{", onText, StringComparison.Ordinal);
        Assert.DoesNotContain("{{{", onText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(nameof(ToolCallFormat.Generic))]
    [InlineData(nameof(ToolCallFormat.Llama3))]
    public async Task A_json_call_trigger_fires_only_where_the_answer_starts(string format)
    {
        // Biased so that the model writes ',' first and '{' after it (from a bias of about 28 its first token is '{'
        // too). A brace after text is no call (the parser reads a bare JSON call only where the answer starts): the
        // grammar stays asleep, the text as free as without it.
        var brace = Enumerable.Range(0, Engine.Model!.VocabularySize).Single(t => Engine.Detokenize([t]) == "{");
        var sampling = new SamplingOptions { Temperature = 0, LogitBias = new Dictionary<int, float> { [brace] = 26.5f } };
        var tools = ToolGrammar.Build(Enum.Parse<ToolCallFormat>(format), [Add], ToolChoice.Auto, parallelCalls: false)!;
        var free = await TextAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 8, Sampling = sampling });
        var lazy = await TextAsync(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 8,
            Sampling = sampling,
            Grammar = tools.Grammar,
            GrammarTriggers = tools.TriggerPatterns,
        });

        Assert.Matches(@"^[^\s{]+\{", free);
        Assert.Equal(free, lazy);
    }

    [Fact]
    public async Task Required_call_through_the_engine_is_valid_and_finishes_with_tool_calls()
    {
        var request = new GenerationRequest
        {
            Messages = [new ChatTurn("user", "Add two and three.")],
            Tools = [Add],
            ToolChoice = ToolChoice.Required,
            ParallelToolCalls = false,
            MaxTokens = 120,
            Sampling = new() { Temperature = 0 },
        };

        await using var stream = Engine.Submit(request);
        var result = await stream.CollectAsync();

        var choice = Assert.Single(result.Choices);
        Assert.Equal(FinishReason.ToolCalls, choice.Completion.FinishReason);
        Assert.Equal(string.Empty, choice.Text);
        var call = Assert.Single(choice.ToolCalls);
        Assert.Equal("add", call.Name);
        using var arguments = JsonDocument.Parse(call.Arguments);
        Assert.InRange(arguments.RootElement.GetProperty("a").GetInt32(), 0, 9);
        Assert.InRange(arguments.RootElement.GetProperty("b").GetInt32(), 0, 9);
    }

    [Fact]
    public async Task A_preserved_control_token_renders_as_its_text_and_other_control_tokens_as_nothing()
    {
        // stories260K's <s> is a control token, as Mistral's [TOOL_CALLS] is. Biased to write it, the model writes it
        // each time: preserved, it is its text, in the text and the log-probabilities; else nothing, as <unk> (the
        // other kind llama.cpp renders only as special) is while <s> is preserved.
        var bos = Assert.Single(Engine.Tokenize("<s>", parseSpecial: true));
        var unknown = Assert.Single(Engine.Tokenize("<unk>", parseSpecial: true));
        GenerationRequest Biased(int token) => new()
        {
            Prompt = Prompt,
            MaxTokens = 3,
            IgnoreEos = true,
            LogProbs = true,
            Sampling = new() { Temperature = 0, LogitBias = new Dictionary<int, float> { [token] = 100 } },
            PreservedTokens = [bos],
        };

        var preserved = await ChoiceAsync(Biased(bos));
        var plain = await ChoiceAsync(Biased(bos) with { PreservedTokens = [] });
        var other = await ChoiceAsync(Biased(unknown));

        Assert.Equal("<s><s><s>", preserved.Text);
        Assert.Equal(["<s>", "<s>", "<s>"], preserved.LogProbs!.Select(p => p.Token));
        Assert.Equal(string.Empty, plain.Text);
        Assert.Equal(3, plain.Completion.Usage.CompletionTokens);
        Assert.Equal(string.Empty, other.Text);
        Assert.Equal([unknown, unknown, unknown], other.LogProbs!.Select(p => p.TokenId));
    }

    [Fact]
    public void Logit_bias_beyond_the_vocabulary_is_refused()
    {
        var error = Assert.Throws<GenerationException>(() => Engine.Submit(new GenerationRequest
        {
            Prompt = Prompt,
            Sampling = new() { LogitBias = new Dictionary<int, float> { [1_000_000] = 1 } },
        }));
        Assert.Equal(GenerationField.LogitBias, error.Field);
    }

    private async Task<string> TextAsync(GenerationRequest request) => (await ChoiceAsync(request)).Text;

    private async Task<GenerationChoiceResult> ChoiceAsync(GenerationRequest request)
    {
        await using var stream = Engine.Submit(request);
        var result = await stream.CollectAsync();
        return result.Choices[0];
    }
}
