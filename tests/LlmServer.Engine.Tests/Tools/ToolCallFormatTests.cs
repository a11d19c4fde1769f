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

    [Theory]
    [InlineData("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", ToolCallFormat.Hermes)]
    [InlineData("Qwen-Qwen2.5-7B-Instruct", ToolCallFormat.Hermes)]
    [InlineData("Qwen-Qwen3-0.6B", ToolCallFormat.Hermes)]
    [InlineData("meta-llama-Llama-3.1-8B-Instruct", ToolCallFormat.Llama3)]
    [InlineData("meta-llama-Llama-3.3-70B-Instruct", ToolCallFormat.Llama3)]
    [InlineData("Mistral-Small-3.2-24B-Instruct-2506", ToolCallFormat.Mistral)]
    [InlineData("unsloth-mistral-Devstral-Small-2507", ToolCallFormat.Mistral)]
    [InlineData("meetkai-functionary-medium-v3.2", ToolCallFormat.FunctionaryV32)]
    [InlineData("Qwen3-Coder", ToolCallFormat.Generic)]
    [InlineData("meetkai-functionary-medium-v3.1", ToolCallFormat.Generic)]
    [InlineData("google-gemma-2-2b-it", ToolCallFormat.Generic)]
    [InlineData("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", ToolCallFormat.Generic)]
    public void Detects_the_format_from_the_template_source(string template, ToolCallFormat expected)
    {
        var source = File.ReadAllText(Path.Combine(TemplatesFolder, template + ".jinja"));
        Assert.Equal(expected, ToolCallFormats.Detect(source));
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
        Assert.Equal(mode == ToolChoiceMode.Auto, grammar.TriggerPatterns.Count > 0);
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

    private static string TemplatesFolder
    {
        get
        {
            var folder = Path.GetFullPath(Path.Combine(TestModels.RepositoryRoot, "..", "shared", "chat-templates", "templates"));
            Assert.True(Directory.Exists(folder), $"The chat-template fixtures are missing: {folder}");
            return folder;
        }
    }
}
