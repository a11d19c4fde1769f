using System.Text.RegularExpressions;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Tools;
using LlmServer.Templating.Chat;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Reasoning;

public sealed class ReasoningStageTests
{
    /// <summary>Model output, whether the prompt opened the block, and the reasoning (null: none) and content it parts into.</summary>
    public static TheoryData<string, bool, string?, string> Outputs => new()
    {
        // The generation prompt opened the block (DeepSeek-R1, QwQ): the output starts as reasoning.
        { "\nThe user greets me.\n</think>\n\nHello!", true, "The user greets me.", "Hello!" },

        // The model opens it (Qwen3), after whitespace.
        { "\n<think>\nShort.\n</think>\n\nHi there.", false, "Short.", "Hi there." },

        // No block: the text is unchanged, whitespace, a later tag and a tag's beginning included.
        { "  Hello <think>not reasoning</think> world", false, null, "  Hello <think>not reasoning</think> world" },
        { "Once upon a time", false, null, "Once upon a time" },
        { "\n<thin", false, null, "\n<thin" },

        // An empty block (Qwen3 with thinking off writes none; a model may still write one).
        { "<think>\n\n</think>\n\nAnswer.", false, null, "Answer." },

        // Cut before the closing tag: all of it is reasoning, a partial tag included.
        { "Still thinking </thi", true, "Still thinking </thi", "" },
        { "<think>Never closed", false, "Never closed", "" },

        // Reasoning with markup-like text and a closing tag's lookalike.
        { "a < b and </thought> too</think>Yes", true, "a < b and </thought> too", "Yes" },
    };

    /// <summary>Text generated so far, whether the prompt opened the block, and what the grammar is fed from (null: asleep).</summary>
    public static TheoryData<string, bool, string?> Triggered => new()
    {
        { "<think>I could write <tool_call>", false, null },
        { "<think>I could write <tool_call> later.</think>\n<tool_call>", false, "<tool_call>" },
        { "Sure. <tool_call>", false, "<tool_call>" },
        // Past the marker: the grammar woke at the token that ended with it (or, a token that went past it, never).
        { "Sure. <tool_call>{\"na", false, null },
        { "I could write <tool_call>", true, null },
        { "Thought.</think>\n\n<tool_call>", true, "<tool_call>" },
    };

    [Theory]
    [InlineData("<｜Assistant｜><think>\n", "", true)]
    [InlineData("<｜Assistant｜><think>\n", "Let me see,", true)]
    [InlineData("<｜Assistant｜><think>\n", "Done.</think>\n\nThe answer:", false)]
    [InlineData("<|im_start|>assistant\n", "", false)]
    [InlineData("<|im_start|>assistant\n", "The answer:", false)]
    [InlineData("<|im_start|>assistant\n", "<think>\nLet me see,", true)]
    [InlineData("<|im_start|>assistant\n", "<think>Done.</think>", false)]
    public void A_continued_message_may_open_or_close_the_block(string rendered, string prefill, bool opens) =>
        Assert.Equal(opens, ReasoningStage.OpensInPrompt(rendered + prefill, prefill.Length));

    [Theory]
    [MemberData(nameof(Triggered))]
    public void Anchored_triggers_wake_the_grammar_only_past_the_block(string generated, bool opensInPrompt, string? fed)
    {
        // llama.cpp matches a pattern written ^...$ against the whole text (any other it searches for anywhere) and
        // feeds the grammar from the first capture group.
        var pattern = Assert.Single(ReasoningStage.AnchorTriggers([ToolGrammar.WordPattern("<tool_call>")], opensInPrompt));
        Assert.StartsWith("^", pattern, StringComparison.Ordinal);
        Assert.EndsWith("$", pattern, StringComparison.Ordinal);
        var match = Regex.Match(generated, pattern);

        Assert.Equal(fed, match.Success ? generated[match.Groups[1].Index..] : null);
    }

    [Theory]
    [MemberData(nameof(Outputs))]
    public void Parts_reasoning_from_content_whole_and_one_character_at_a_time(string output, bool startsInside, string? reasoning, string content)
    {
        foreach (var pieces in new[] { [output], output.Select(c => c.ToString()).ToArray() })
        {
            var events = Run(new ReasoningStage(1, startsInside), pieces);

            var thoughts = events.OfType<ReasoningDelta>().ToList();
            var thought = string.Concat(thoughts.Select(t => t.Text));
            Assert.Equal(reasoning, thought.Length == 0 ? null : thought);
            Assert.Equal(content, string.Concat(events.OfType<TextDelta>().Select(t => t.Text)));

            // Every token is counted once, on one side or the other.
            Assert.Equal(pieces.Length, events.OfType<TextDelta>().Sum(t => t.Tokens) + thoughts.Sum(t => t.Tokens));
            Assert.Equal(thoughts.Sum(t => t.Tokens), Assert.IsType<GenerationCompleted>(events[^1]).Usage.ReasoningTokens);
        }
    }

    /// <summary>
    /// The model's tokens, whether the prompt opened the block, and how many are reasoning: the block's, both tags
    /// included (through the token that completes the closing tag; whitespace before the block goes with it); all of
    /// them while it is open.
    /// </summary>
    public static TheoryData<string[], bool, int> Counted => new()
    {
        // A closed block holding only whitespace.
        { ["<think>", "\n\n", "</think>", "\n\n", "Hi"], false, 3 },
        { ["\n", "<think>", "\n\n", "</", "think", ">", "\n\n", "Hi"], false, 6 },

        // A normal block: its closing tag, and the whitespace before it, are reasoning.
        { ["<think>", "Let", " me", "\n", "</think>", "\n\n", "Hi"], false, 5 },
        { ["<think>", "Hm", "</think>Hi"], false, 3 },

        // An unclosed block, cut short: everything generated.
        { ["<think>", "Let", " me", "\n"], false, 4 },
        { ["<think>", "\n"], false, 2 },

        // Opened in the prompt: up to and including the closing tag.
        { ["\n", "Let", " me", "\n", "</think>", "\n\n", "Hi"], true, 5 },
        { ["</think>", "Hi"], true, 1 },
        { ["Let", " me"], true, 2 },

        // No block.
        { ["\n", "Hi", " <think>"], false, 0 },
    };

    [Theory]
    [MemberData(nameof(Counted))]
    public void The_completion_counts_the_block_and_its_tags_as_reasoning_tokens(string[] tokens, bool startsInside, int reasoningTokens)
    {
        var events = Run(new ReasoningStage(1, startsInside), tokens);

        Assert.Equal(reasoningTokens, Assert.IsType<GenerationCompleted>(events[^1]).Usage.ReasoningTokens);

        // The pieces carry the same split: reasoning tokens on reasoning, the rest on the answer.
        Assert.Equal(reasoningTokens, events.OfType<ReasoningDelta>().Sum(t => t.Tokens));
        Assert.Equal(tokens.Length - reasoningTokens, events.OfType<TextDelta>().Sum(t => t.Tokens));
    }

    [Fact]
    public void A_block_cut_by_a_stop_sequence_counts_the_tokens_that_wrote_no_text()
    {
        // The scheduler left the stop sequence's tokens out of the deltas; they are completion tokens of the open block.
        var events = new List<GenerationEvent>();
        var stage = new ReasoningStage(1, startsInside: false);
        stage.Process(new TextDelta(0, "<think>", 1, null), events);
        stage.Process(new TextDelta(0, "Hm", 1, null), events);
        stage.Process(Completed(0, completionTokens: 4), events);

        Assert.Equal(4, Assert.IsType<GenerationCompleted>(events[^1]).Usage.ReasoningTokens);
    }

    [Fact]
    public void Without_a_reasoning_stage_nothing_is_reasoning() => Assert.Equal(0, Completed(0, 3).Usage.ReasoningTokens);

    [Fact]
    public void A_tag_split_across_deltas_is_held_until_it_is_whole()
    {
        var events = Run(new ReasoningStage(1, startsInside: false), ["<th", "ink>", "Plan: ", "greet.</", "thi", "nk>", "\n\nHel", "lo"]);

        Assert.Equal(["R:Plan:", "R: greet.", "R:", "T:Hel", "T:lo"], events.Where(e => e is not GenerationCompleted).Select(Describe));
        // The opening tag's tokens go with the first reasoning, the closing tag's with an empty piece of reasoning.
        Assert.Equal([3, 1, 2], events.OfType<ReasoningDelta>().Select(t => t.Tokens));
        Assert.Equal([1, 1], events.OfType<TextDelta>().Select(t => t.Tokens));
        Assert.Equal(6, Assert.IsType<GenerationCompleted>(events[^1]).Usage.ReasoningTokens);
    }

    [Fact]
    public void Choices_are_parted_apart()
    {
        var stage = new ReasoningStage(2, startsInside: true);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "first</think>A", 2, null), events);
        stage.Process(new TextDelta(1, "second", 1, null), events);
        stage.Process(new TextDelta(1, "</think>B", 1, null), events);
        stage.Process(Completed(0), events);
        stage.Process(Completed(1), events);

        Assert.Equal(["R0:first", "T0:A", "R1:second", "R1:", "T1:B"], events.Where(e => e is not GenerationCompleted).Select(e => Describe(e).Insert(1, e.Choice.ToString(System.Globalization.CultureInfo.InvariantCulture))));
    }

    [Fact]
    public void Log_probabilities_go_with_the_piece_their_tokens_wrote()
    {
        var stage = new ReasoningStage(1, startsInside: true);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "why", 1, [LogProb("why")]), events);
        stage.Process(new TextDelta(0, "</think>", 1, [LogProb("</think>")]), events);
        stage.Process(new TextDelta(0, "so", 1, [LogProb("so")]), events);
        stage.Process(Completed(0), events);

        Assert.Equal(["why", "</think>"], events.OfType<ReasoningDelta>().SelectMany(t => t.LogProbs!).Select(l => l.Token));
        var text = Assert.Single(events.OfType<TextDelta>());
        Assert.Equal(["so"], text.LogProbs!.Select(l => l.Token));
    }

    [Fact]
    public void The_tool_call_parser_sees_only_the_answer()
    {
        // The reasoning mentions the call syntax; only the call after the block is one.
        var reasoning = new ReasoningStage(1, startsInside: true);
        var tools = new ToolCallStage(1, ToolCallFormat.Hermes, ["add"], parallelCalls: true);
        var output = "I could write <tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 0}}</tool_call> here.\n</think>\n\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>";
        var events = new List<GenerationEvent>();
        foreach (var item in output.Select(c => (GenerationEvent)new TextDelta(0, c.ToString(), 1, null)).Append(Completed(0)))
        {
            var staged = new List<GenerationEvent>();
            reasoning.Process(item, staged);
            foreach (var piece in staged)
            {
                tools.Process(piece, events);
            }
        }

        Assert.Equal("I could write <tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 0}}</tool_call> here.", string.Concat(events.OfType<ReasoningDelta>().Select(t => t.Text)));
        var call = Assert.Single(events.OfType<ToolCallStarted>());
        Assert.Equal("add", call.Name);
        Assert.Equal("{\"a\": 1}", string.Concat(events.OfType<ToolCallArgumentsDelta>().Select(a => a.Fragment)));
        Assert.Equal(string.Empty, string.Concat(events.OfType<TextDelta>().Select(t => t.Text)));
        Assert.Equal(FinishReason.ToolCalls, Assert.IsType<GenerationCompleted>(events[^1]).FinishReason);
    }

    [Theory]
    [InlineData("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", true, true)]
    [InlineData("llama-cpp-deepseek-r1", true, true)]
    [InlineData("Qwen-QwQ-32B", true, true)]
    [InlineData("Qwen-Qwen3-0.6B", true, false)]
    public void Real_templates_write_think_tags_and_some_open_the_block_in_the_prompt(string template, bool writesTags, bool opensInPrompt)
    {
        var source = ChatTemplateFixtures.TemplateSource(template);
        var prompt = ChatTemplate.Parse(source).Render(new ChatTemplateRequest([new ChatTemplateMessage("user", "Hi")]));

        Assert.Equal(writesTags, ReasoningStage.WritesThinkTags(source));
        Assert.Equal(opensInPrompt, ReasoningStage.OpensInPrompt(prompt));
    }

    [Fact]
    public void A_template_that_closes_the_block_when_thinking_is_off_leaves_the_answer_as_content()
    {
        // Qwen3 with enable_thinking false renders an empty block after the generation prompt.
        var prompt = ChatTemplate.Parse(ChatTemplateFixtures.TemplateSource("Qwen-Qwen3-0.6B"))
            .Render(new ChatTemplateRequest([new ChatTemplateMessage("user", "Hi")]) { EnableThinking = false });
        Assert.EndsWith("<think>\n\n</think>\n\n", prompt, StringComparison.Ordinal);
        Assert.False(ReasoningStage.OpensInPrompt(prompt));

        var events = Run(new ReasoningStage(1, ReasoningStage.OpensInPrompt(prompt)), ["Hello", " there."]);
        Assert.Empty(events.OfType<ReasoningDelta>());
        Assert.Equal("Hello there.", string.Concat(events.OfType<TextDelta>().Select(t => t.Text)));
    }

    [Fact]
    public void A_template_without_think_tags_is_not_split()
    {
        Assert.False(ReasoningStage.WritesThinkTags(ChatTemplateFixtures.TemplateSource("Qwen-Qwen2.5-7B-Instruct")));
        Assert.False(ReasoningStage.WritesThinkTags(null));
    }

    private static List<GenerationEvent> Run(ReasoningStage stage, IEnumerable<string> pieces)
    {
        var events = new List<GenerationEvent>();
        var tokens = 0;
        foreach (var piece in pieces)
        {
            stage.Process(new TextDelta(0, piece, 1, null), events);
            tokens++;
        }

        stage.Process(Completed(0, tokens), events);
        return events;
    }

    private static string Describe(GenerationEvent item) => item switch
    {
        ReasoningDelta r => "R:" + r.Text,
        TextDelta t => "T:" + t.Text,
        _ => item.GetType().Name,
    };

    private static TokenLogProb LogProb(string token) => new(0, token, System.Text.Encoding.UTF8.GetBytes(token), -0.5f, []);

    private static GenerationCompleted Completed(int choice, int completionTokens = 1) =>
        new(choice, FinishReason.Stop, new GenerationUsage(1, 0, completionTokens), new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero));
}
