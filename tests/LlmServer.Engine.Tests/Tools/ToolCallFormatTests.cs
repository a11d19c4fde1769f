using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.Tests.Grammars;
using LlmServer.Engine.Tools;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Tools;

public sealed class ToolCallFormatTests
{
    private static readonly ToolDefinition[] Tools =
    [
        new("get_weather", "Get the weather.", JsonDocument.Parse("""{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}""").RootElement),
        new("add", "Add two integers.", JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}""").RootElement),
        new("now", null, null),
    ];

    /// <summary>
    /// Every fixture template's detected format, pinned: a detector change shows its effect here. Hermes only where
    /// JSON follows <c>&lt;tool_call&gt;</c>; the XML-like syntaxes inside that tag (Qwen3-Coder's
    /// <c>&lt;function=&gt;</c>, GLM's and Laguna's <c>name&lt;arg_key&gt;</c>, MiniMax's <c>&lt;invoke&gt;</c>) and
    /// Apriel's <c>&lt;tool_calls&gt;[...]</c> have no native parser, so they take the generic form.
    /// </summary>
    private static readonly Dictionary<string, ToolCallFormat> DetectedFormats = new(StringComparer.Ordinal)
    {
        ["Apertus-8B-Instruct"] = ToolCallFormat.Generic,
        ["Apriel-1.6-15b-Thinker-fixed"] = ToolCallFormat.Generic,
        ["Bielik-11B-v3.0-Instruct"] = ToolCallFormat.Hermes,
        ["ByteDance-Seed-OSS"] = ToolCallFormat.Generic,
        ["Cohere2MoE"] = ToolCallFormat.Generic,
        ["CohereForAI-c4ai-command-r-plus-tool_use"] = ToolCallFormat.Generic,
        ["CohereForAI-c4ai-command-r7b-12-2024-tool_use"] = ToolCallFormat.Generic,
        ["GLM-4.6"] = ToolCallFormat.Generic,
        ["GLM-4.7-Flash"] = ToolCallFormat.Generic,
        ["GigaChat3-10B-A1.8B"] = ToolCallFormat.Generic,
        ["GigaChat3.1-10B-A1.8B"] = ToolCallFormat.Generic,
        ["Kimi-K2-Instruct"] = ToolCallFormat.Generic,
        ["Kimi-K2-Thinking"] = ToolCallFormat.Generic,
        ["LFM2-8B-A1B"] = ToolCallFormat.Generic,
        ["LFM2.5-8B-A1B"] = ToolCallFormat.Generic,
        ["LFM2.5-Instruct"] = ToolCallFormat.Generic,
        ["MiMo-VL"] = ToolCallFormat.Hermes,
        ["MiniMax-M2"] = ToolCallFormat.Generic,
        ["MiniMax-M3"] = ToolCallFormat.Generic,
        ["Mistral-Small-3.2-24B-Instruct-2506"] = ToolCallFormat.Mistral,
        ["NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"] = ToolCallFormat.Generic,
        ["NVIDIA-Nemotron-Nano-v2"] = ToolCallFormat.Generic,
        ["NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use"] = ToolCallFormat.Hermes,
        ["Qwen-QwQ-32B"] = ToolCallFormat.Hermes,
        ["Qwen-Qwen2.5-7B-Instruct"] = ToolCallFormat.Hermes,
        ["Qwen-Qwen3-0.6B"] = ToolCallFormat.Hermes,
        ["Qwen3-Coder"] = ToolCallFormat.Generic,
        ["Qwen3.5-4B"] = ToolCallFormat.Generic,
        ["Reka-Edge"] = ToolCallFormat.Hermes,
        ["StepFun3.5-Flash"] = ToolCallFormat.Generic,
        ["deepseek-ai-DeepSeek-R1-Distill-Llama-8B"] = ToolCallFormat.Generic,
        ["deepseek-ai-DeepSeek-V3.1"] = ToolCallFormat.Generic,
        ["deepseek-ai-DeepSeek-V3.2"] = ToolCallFormat.Generic,
        ["deepseek-ai-DeepSeek-V4"] = ToolCallFormat.Generic,
        ["fireworks-ai-llama-3-firefunction-v2"] = ToolCallFormat.Generic,
        ["google-gemma-2-2b-it"] = ToolCallFormat.Generic,
        ["google-gemma-4-31B-it-interleaved"] = ToolCallFormat.Generic,
        ["google-gemma-4-31B-it"] = ToolCallFormat.Generic,
        ["ibm-granite-granite-4.0"] = ToolCallFormat.Hermes,
        ["ibm-granite-granite-4.1"] = ToolCallFormat.Hermes,
        ["llama-cpp-deepseek-r1"] = ToolCallFormat.Generic,
        ["llama-cpp-rwkv-world"] = ToolCallFormat.Generic,
        ["meetkai-functionary-medium-v3.1"] = ToolCallFormat.Generic,
        ["meetkai-functionary-medium-v3.2"] = ToolCallFormat.FunctionaryV32,
        ["meta-llama-Llama-3.1-8B-Instruct"] = ToolCallFormat.Llama3,
        ["meta-llama-Llama-3.3-70B-Instruct"] = ToolCallFormat.Llama3,
        ["mistralai-Ministral-3-14B-Reasoning-2512"] = ToolCallFormat.Mistral,
        ["moonshotai-Kimi-K2"] = ToolCallFormat.Generic,
        ["openai-gpt-oss-120b"] = ToolCallFormat.Generic,
        ["openbmb-MiniCPM5-1B"] = ToolCallFormat.Generic,
        ["poolside-Laguna-S-2.1"] = ToolCallFormat.Generic,
        ["poolside-Laguna-XS-2.1"] = ToolCallFormat.Generic,
        ["poolside-Laguna-XS.2"] = ToolCallFormat.Generic,
        ["tencent-Hy3"] = ToolCallFormat.Generic,
        ["unsloth-Apriel-1.5"] = ToolCallFormat.Generic,
        ["unsloth-mistral-Devstral-Small-2507"] = ToolCallFormat.Mistral,
        ["upstage-Solar-Open-100B"] = ToolCallFormat.Generic,
    };

    public static TheoryData<string> Templates() => [.. ChatTemplateFixtures.TemplateNames];

    [Theory]
    [MemberData(nameof(Templates))]
    public void Detects_the_format_from_the_template_source(string template)
    {
        Assert.True(DetectedFormats.TryGetValue(template, out var expected), $"{template} is not in the table.");
        Assert.Equal(expected, ToolCallFormats.Detect(ChatTemplateFixtures.TemplateSource(template)));
    }

    [Fact]
    public void The_table_covers_every_fixture_template() =>
        Assert.Equal(ChatTemplateFixtures.TemplateNames.Order(StringComparer.Ordinal), DetectedFormats.Keys.Order(StringComparer.Ordinal));

    /// <summary>
    /// Hermes-style calls written as real templates vary them: the keys in either order, Jinja statements or comments
    /// between the tag and the object, the object split across outputs, quotes escaped in a double-quoted literal.
    /// Other syntaxes inside <c>&lt;tool_call&gt;</c>, or a JSON object that is not a call of this shape, stay generic.
    /// </summary>
    [Theory]
    [InlineData("""{{- '<tool_call>\n{"arguments": ' + tool_call.arguments + ', "name": "' + tool_call.name + '"}\n</tool_call>' }}""", ToolCallFormat.Hermes)]
    [InlineData("""{{- '<tool_call>\n' }}{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}{{- '{"name": "' + tool_call.name + '", "arguments": ' + tool_call.arguments | tojson + '}\n</tool_call>' }}""", ToolCallFormat.Hermes)]
    [InlineData("""{{- '<tool_call>\n' }}{#- one call a tag -#}{{- '{' }}{{- '"name": "' }}{{- tool_call.name }}{{- '", ' }}{{- '"arguments": ' }}{{- tool_call.arguments }}{{- '}\n</tool_call>' }}""", ToolCallFormat.Hermes)]
    [InlineData("""{{ "<tool_call>\n{\"name\": \"" ~ tool_call.name ~ "\", \"arguments\": " ~ tool_call.arguments ~ "}\n</tool_call>" }}""", ToolCallFormat.Hermes)]
    [InlineData("""{{- '<tool_call>\n<function=' + tool_call.name + '>\n' }}{{- '"arguments": {}' }}{{- '</function>\n</tool_call>' }}""", ToolCallFormat.Generic)]
    [InlineData("""{{- '<tool_call>' + tool_call.name }}{%- for k, v in tool_call.arguments.items() %}<arg_key>{{ k }}</arg_key><arg_value>{{ v }}</arg_value>{%- endfor %}</tool_call>""", ToolCallFormat.Generic)]
    [InlineData("""{{- '<tool_call>\n{"name": "' + tool_call.name + '", "parameters": ' + tool_call.arguments + '}\n</tool_call>' }}""", ToolCallFormat.Generic)]
    [InlineData("""Calls go within <tool_call></tool_call> tags: {"name": <function-name>, "arguments": <args>}""", ToolCallFormat.Generic)]
    public void Detects_hermes_calls_however_the_template_writes_them(string source, ToolCallFormat expected) =>
        Assert.Equal(expected, ToolCallFormats.Detect(source));

    /// <summary>
    /// A long run of Jinja statements after <c>&lt;tool_call&gt;</c> has one reading: a detector that tried every way
    /// of splitting it into statements would take 2^63 steps here and never finish loading the model.
    /// </summary>
    [Fact]
    public void A_long_run_of_statements_after_the_tag_is_read_once()
    {
        var statements = "<tool_call>" + string.Concat(Enumerable.Repeat("{%- set x = 1 -%}", 64));

        Assert.Equal(ToolCallFormat.Generic, ToolCallFormats.Detect(statements + "x</tool_call>"));
        Assert.Equal(ToolCallFormat.Hermes, ToolCallFormats.Detect(statements + "{\"name\": \"a\", \"arguments\": {}}</tool_call>"));
    }

    /// <summary>
    /// Many tags that never close (a hostile or broken template): each is read up to the next tag, not to the end of
    /// the source, so detection stays linear in the source's size.
    /// </summary>
    [Fact]
    public void Many_unclosed_tags_are_read_up_to_the_next_tag()
    {
        var unclosedBodies = string.Concat(Enumerable.Repeat("<tool_call>{" + new string('a', 100), 2000));
        var unclosedStatements = string.Concat(Enumerable.Repeat("<tool_call>{% set x = 1 ", 2000));

        Assert.Equal(ToolCallFormat.Generic, ToolCallFormats.Detect(unclosedBodies));
        Assert.Equal(ToolCallFormat.Generic, ToolCallFormats.Detect(unclosedStatements));
        Assert.Equal(ToolCallFormat.Hermes, ToolCallFormats.Detect(unclosedBodies + "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>"));
    }

    /// <summary>
    /// A template that takes one call a message (its capabilities show no parallel calls) gets the one-call grammar,
    /// and one call passed on, though the request asks for parallel calls; a template that takes several gets them.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Parallel_calls_are_asked_for_only_where_the_template_takes_them(bool templateTakesParallelCalls)
    {
        var request = new GenerationRequest { Messages = [new ChatTurn("user", "hi")], Tools = Tools, ToolChoice = ToolChoice.Required, ParallelToolCalls = true };
        var prepared = new ToolCalling(ToolCallFormat.Hermes, templateRendersTools: true, templateTakesParallelCalls).Prepare(request)!;

        var oneCall = ToolGrammar.Build(ToolCallFormat.Hermes, Tools, ToolChoice.Required, parallelCalls: false)!.Grammar;
        var parallel = ToolGrammar.Build(ToolCallFormat.Hermes, Tools, ToolChoice.Required, parallelCalls: true)!.Grammar;
        Assert.NotEqual(oneCall, parallel);
        Assert.Equal(templateTakesParallelCalls ? parallel : oneCall, prepared.Request.Grammar);

        var events = new List<GenerationEvent>();
        const string TwoCalls = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
        prepared.Stage!.Process(new TextDelta(0, TwoCalls, 30, null), events);
        Assert.Equal(templateTakesParallelCalls ? ["add", "now"] : ["add"], events.OfType<ToolCallStarted>().Select(c => c.Name));
    }

    [Fact]
    public void No_template_is_the_generic_form() => Assert.Equal(ToolCallFormat.Generic, ToolCallFormats.Detect(null));

    public static TheoryData<ToolCallFormat, ToolChoiceMode, bool> Grammars()
    {
        var data = new TheoryData<ToolCallFormat, ToolChoiceMode, bool>();
        foreach (var format in Enum.GetValues<ToolCallFormat>())
        {
            foreach (var mode in new[] { ToolChoiceMode.Auto, ToolChoiceMode.Required, ToolChoiceMode.Function })
            {
                data.Add(format, mode, true);
                data.Add(format, mode, false);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Grammars))]
    public void Call_grammars_parse_here_and_in_llama_cpp(ToolCallFormat format, ToolChoiceMode mode, bool parallel)
    {
        var choice = mode == ToolChoiceMode.Function ? ToolChoice.Function("add") : new ToolChoice(mode);
        var grammar = ToolGrammar.Build(format, Tools, choice, parallel)!;

        Assert.True(GbnfValidator.TryValidate(grammar.Grammar, "root", out var error), error + "\n" + grammar.Grammar);
        using var llama = new LlamaCppGrammar();
        Assert.True(llama.Accepts(grammar.Grammar), grammar.Grammar);
        Assert.Equal(mode == ToolChoiceMode.Auto, grammar.TriggerPatterns.Count + grammar.TriggerWords.Count > 0);
        if (mode == ToolChoiceMode.Function)
        {
            Assert.DoesNotContain("get_weather", grammar.Grammar, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void None_needs_no_grammar() => Assert.Null(ToolGrammar.Build(ToolCallFormat.Hermes, Tools, ToolChoice.None, parallelCalls: true));

    [Fact]
    public void A_schema_the_grammar_cannot_enforce_names_the_tool()
    {
        var good = new ToolDefinition("good", null, JsonDocument.Parse("""{"type":"object"}""").RootElement);
        var bad = new ToolDefinition("bad", null, JsonDocument.Parse("""{"type":"object","properties":{"x":{"not":{}}}}""").RootElement);
        var error = Assert.Throws<ToolSchemaException>(() => ToolGrammar.Build(ToolCallFormat.Generic, [good, bad], ToolChoice.Required, parallelCalls: false));
        Assert.Contains("'bad'", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, error.ToolIndex);
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    public void Bad_tool_names_are_refused(string name)
    {
        var request = new GenerationRequest { Messages = [new ChatTurn("user", "hi")], Tools = [new ToolDefinition(name, null, null)] };
        var error = Assert.Throws<GenerationException>(() => ToolCalling.Validate(request));
        Assert.Equal(GenerationField.ToolName, error.Field);
        Assert.Equal(0, error.FieldIndex);
    }

    [Fact]
    public void A_tool_choice_naming_an_unknown_function_is_refused()
    {
        var request = new GenerationRequest { Messages = [new ChatTurn("user", "hi")], Tools = Tools, ToolChoice = ToolChoice.Function("nope") };
        var error = Assert.Throws<GenerationException>(() => ToolCalling.Validate(request));
        Assert.Equal(GenerationField.ToolChoice, error.Field);
        Assert.Contains("'nope'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generic_prompt_offers_the_tools_in_the_system_message_and_writes_out_history()
    {
        IReadOnlyList<ChatTurn> messages =
        [
            new ChatTurn("system", "Be brief."),
            new ChatTurn("user", "Add 1 and 2."),
            new ChatTurn("assistant", null) { ToolCalls = [new ToolCall("call_1", "add", "{\"a\":1,\"b\":2}")] },
            new ChatTurn("tool", "3") { ToolCallId = "call_1", Name = "add" },
        ];

        var turns = GenericToolPrompt.Apply(messages, Tools, ToolChoice.Auto, parallelCalls: true);

        Assert.Equal(["system", "user", "assistant", "user"], turns.Select(t => t.Role));
        Assert.StartsWith("Be brief.\n\nYou can call any of the following tools", turns[0].Content, StringComparison.Ordinal);
        Assert.Contains("\"name\":\"get_weather\"", turns[0].Content, StringComparison.Ordinal);
        Assert.Contains("with `response`", turns[0].Content, StringComparison.Ordinal);
        Assert.Equal("{\"tool_calls\":[{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2},\"id\":\"call_1\"}]}", turns[2].Content);
        Assert.Equal("{\"tool_response\":{\"tool\":\"add\",\"id\":\"call_1\",\"content\":\"3\"}}", turns[3].Content);

        var none = GenericToolPrompt.Apply(messages, Tools, ToolChoice.None, parallelCalls: true);
        Assert.Equal("Be brief.", none[0].Content);
        Assert.Equal(turns[2].Content, none[2].Content);
    }

    [Fact]
    public void A_calls_reasoning_stays_with_its_message_when_the_history_is_rewritten()
    {
        var calls = new ChatTurn("assistant", "Let me see.")
        {
            ReasoningContent = "Two sums.",
            ToolCalls = [new ToolCall("call_1", "add", "{\"a\":1,\"b\":2}"), new ToolCall("call_2", "add", "{\"a\":3,\"b\":4}")],
        };

        // Split one call a message: the text and the reasoning go with the first, once.
        var split = ToolCalling.OneCallPerMessage([new ChatTurn("user", "Add."), calls]);
        Assert.Equal([null, "Two sums.", null], split.Select(t => t.ReasoningContent));
        Assert.Equal([null, "Let me see.", null], split.Select(t => t.Role == "assistant" ? t.Content : null));

        // Written out for the generic prompt: the message keeps its reasoning.
        var generic = GenericToolPrompt.Apply([new ChatTurn("user", "Add."), calls], Tools, ToolChoice.Auto, parallelCalls: true);
        Assert.Equal("Two sums.", generic[^1].ReasoningContent);
    }
}
