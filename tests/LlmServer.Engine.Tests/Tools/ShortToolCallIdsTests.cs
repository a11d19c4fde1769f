using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Prompting;
using LlmServer.Engine.Tests.RealModel;
using LlmServer.Engine.Tools;
using LlmServer.Testing;
using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Engine.Tests.Tools;

/// <summary>
/// Client call ids through Mistral's templates, which refuse any id but nine alphanumerics: renamed for the render
/// only, the same in a call and its answer, and the same in every request of the conversation.
/// </summary>
public sealed class ShortToolCallIdsTests
{
    private const string MistralSmall = "Mistral-Small-3.2-24B-Instruct-2506";

    /// <summary>The day llama.cpp rendered the fixtures: Mistral's default system prompt prints it.</summary>
    private static readonly DateTimeOffset RenderedOn = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_client_ids_round_trip_renders_in_mistral_small_as_its_template_expects()
    {
        // llama.cpp refuses this case: its id is call_1.
        Assert.Contains("alphanumeric strings with length 9", ChatTemplateFixtures.ExpectedError(MistralSmall, "tool-round-trip"), StringComparison.Ordinal);
        // The round trip after tools-offered's system message, so llama.cpp's rendering of that case is the prefix.
        var (turns, tools) = OtherModelTests.FixtureCase("tool-round-trip");
        var (offered, _) = OtherModelTests.FixtureCase("tools-offered");
        Assert.Equal(offered[1], turns[0]);
        turns.Insert(0, offered[0]);
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Stories260K);
        var (formatter, calling) = MistralSmallEngine(weights);

        var prepared = calling.Prepare(new GenerationRequest { Messages = turns, Tools = tools })!;
        var prompt = formatter.Format(prepared.PromptMessages, prepared.TemplateTools, addAssistantPrompt: true);

        var id = Assert.Single(prepared.PromptMessages[2].ToolCalls!).Id;
        Assert.True(ShortToolCallIds.IsShort(id), id);
        Assert.Equal(id, prepared.PromptMessages[3].ToolCallId);

        // Then the template's own strings for the call and its result.
        Assert.Equal(
            ChatTemplateFixtures.ExpectedPrompt(MistralSmall, "tools-offered")
                + $$"""[TOOL_CALLS]get_weather[CALL_ID]{{id}}[ARGS]{"city": "Paris"}</s>[TOOL_RESULTS]{{id}}[TOOL_CONTENT]{"temperature": 18, "sky": "cloudy"}[/TOOL_RESULTS]""",
            prompt);

        // The request keeps the client's ids: the API answers with them.
        Assert.Equal("call_1", turns[2].ToolCalls![0].Id);
        Assert.Equal("call_1", turns[3].ToolCallId);
    }

    [Fact]
    public void Parallel_calls_get_an_id_each_and_each_answer_names_its_call()
    {
        var (turns, tools) = OtherModelTests.FixtureCase("parallel-calls");
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Stories260K);
        var (formatter, calling) = MistralSmallEngine(weights);

        var prepared = calling.Prepare(new GenerationRequest { Messages = turns, Tools = tools })!;
        var prompt = formatter.Format(prepared.PromptMessages, prepared.TemplateTools, addAssistantPrompt: true);

        var calls = prepared.PromptMessages[1].ToolCalls!;
        var (a, b) = (calls[0].Id, calls[1].Id);
        Assert.NotEqual(a, b);
        Assert.Equal(
            formatter.Format(prepared.PromptMessages.Take(1).ToList(), prepared.TemplateTools, addAssistantPrompt: true)
                + $$"""[TOOL_CALLS]add[CALL_ID]{{a}}[ARGS]{"a": 2, "b": 3}[TOOL_CALLS]get_weather[CALL_ID]{{b}}[ARGS]{"city": "Oslo", "unit": "celsius"}</s>"""
                + $$"""[TOOL_RESULTS]{{a}}[TOOL_CONTENT]5[/TOOL_RESULTS][TOOL_RESULTS]{{b}}[TOOL_CONTENT]{"temperature": 3}[/TOOL_RESULTS]""",
            prompt);
    }

    [Fact]
    public void The_same_client_id_gets_the_same_short_id_in_every_request_so_the_prompt_prefix_stays()
    {
        ChatTurn[] first =
        [
            new("user", "Add 2 and 3."),
            Call("call_abc123def456ghi789jkl0"),
            Answer("call_abc123def456ghi789jkl0", "5"),
        ];
        ChatTurn[] next = [.. first, new("assistant", "5."), new("user", "And 4 and 5?"), Call("toolu_01XYZ"), Answer("toolu_01XYZ", "9")];

        var firstIds = ShortToolCallIds.ForTemplate(first);
        var nextIds = ShortToolCallIds.ForTemplate(next);

        Assert.Equal(firstIds, nextIds.Take(first.Length), new TurnComparer());
        var ids = nextIds.SelectMany(t => (t.ToolCalls ?? []).Select(c => c.Id).Append(t.ToolCallId)).OfType<string>().ToList();
        Assert.All(ids, id => Assert.True(ShortToolCallIds.IsShort(id), id));
        Assert.Equal(2, ids.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Short_ids_are_kept_and_a_clash_with_one_takes_another_id()
    {
        var derived = ShortToolCallIds.ForTemplate([Call("call_x")])[0].ToolCalls![0].Id;

        // The engine's own id, already short, is the derived one: the client's id must not render as the same call.
        ChatTurn[] clash = [Call(derived), Answer(derived, "1"), Call("call_x"), Answer("call_x", "2")];
        var renamed = ShortToolCallIds.ForTemplate(clash);

        Assert.Equal(derived, renamed[0].ToolCalls![0].Id);
        Assert.Equal(derived, renamed[1].ToolCallId);
        var other = renamed[2].ToolCalls![0].Id;
        Assert.NotEqual(derived, other);
        Assert.True(ShortToolCallIds.IsShort(other), other);
        Assert.Equal(other, renamed[3].ToolCallId);
    }

    [Fact]
    public void A_conversation_whose_ids_are_all_short_or_absent_is_rendered_as_it_is()
    {
        ChatTurn[] plain = [new("user", "Hi"), new("assistant", "Hello")];
        ChatTurn[] shortIds = [new("user", "Add."), Call("abcDEF123"), Answer("abcDEF123", "5")];

        Assert.Same(plain, ShortToolCallIds.ForTemplate(plain));
        Assert.Same(shortIds, ShortToolCallIds.ForTemplate(shortIds));
    }

    [Fact]
    public void Other_formats_render_the_client_ids_as_they_are()
    {
        var (turns, tools) = OtherModelTests.FixtureCase("tool-round-trip");
        var prepared = new ToolCalling(ToolCallFormat.Hermes, templateRendersTools: true).Prepare(new GenerationRequest { Messages = turns, Tools = tools })!;

        Assert.Same(turns, prepared.PromptMessages);
    }

    /// <summary>The engine's formatter and tool calling for stories260K's vocabulary (BOS <c>&lt;s&gt;</c>, EOS <c>&lt;/s&gt;</c>, as llama.cpp rendered the fixtures) with Mistral Small's template.</summary>
    private static (ChatPromptFormatter Formatter, ToolCalling Calling) MistralSmallEngine(LLama.LLamaWeights weights)
    {
        var file = Path.Combine(ChatTemplateFixtures.Root, "templates", MistralSmall + ".jinja");
        var formatter = ChatPromptFormatter.Create(weights, new ModelOptions { ChatTemplateFile = file }, new FakeTimeProvider(RenderedOn));
        var calling = new ToolCalling(ToolCallFormats.Detect(formatter.Info.Source), formatter.Info.Capabilities!.SupportsTools);
        Assert.Equal(ToolCallFormat.Mistral, calling.Format);
        return (formatter, calling);
    }

    private static ChatTurn Call(string id) => new("assistant", null) { ToolCalls = [new ToolCall(id, "add", """{"a":2,"b":3}""")] };

    private static ChatTurn Answer(string id, string result) => new("tool", result) { ToolCallId = id };

    /// <summary>Turns are records, but their call lists compare by reference: compared here by content.</summary>
    private sealed class TurnComparer : IEqualityComparer<ChatTurn>
    {
        public bool Equals(ChatTurn? x, ChatTurn? y) =>
            x is not null && y is not null && x.Role == y.Role && x.Content == y.Content && x.ToolCallId == y.ToolCallId
            && (x.ToolCalls ?? []).SequenceEqual(y.ToolCalls ?? []);

        public int GetHashCode(ChatTurn obj) => obj.Role.GetHashCode(StringComparison.Ordinal);
    }
}
