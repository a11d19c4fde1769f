using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Tools;

namespace LlmServer.Engine.Tests.Tools;

public sealed class ToolCallParserTests
{
    private static readonly string[] ToolNames = ["get_weather", "add"];

    public static TheoryData<ToolCallFormat, string, string, string[]> Outputs => new()
    {
        // Hermes, Qwen 2.5, Qwen 3.
        { ToolCallFormat.Hermes, "Let me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "Let me check.", ["get_weather {\"city\": \"Paris\"}"] },
        { ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>\n<tool_call>\n{\"arguments\": {\"city\": \"Rome\"}, \"name\": \"get_weather\"}\n</tool_call>", "", ["add {\"a\": 1, \"b\": 2}", "get_weather {\"city\": \"Rome\"}"] },
        { ToolCallFormat.Hermes, "<tool_call>{\"name\": \"add\"}</tool_call>", "", ["add {}"] },
        { ToolCallFormat.Hermes, "a < b and <tool_call>{\"name\": \"delete_all\", \"arguments\": {}}</tool_call> <tool", "a < b and <tool_call>{\"name\": \"delete_all\", \"arguments\": {}}</tool_call> <tool", [] },
        { ToolCallFormat.Hermes, "<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": \"}{\\\"\"}}</tool_call>Done.", "Done.", ["add {\"a\": \"}{\\\"\"}"] },

        // Llama 3.1 to 3.3.
        { ToolCallFormat.Llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "", ["get_weather {\"city\": \"Paris\"}"] },
        { ToolCallFormat.Llama3, "  {\"type\": \"function\", \"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}", "", ["add {\"a\": 1, \"b\": 2}"] },
        { ToolCallFormat.Llama3, "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}", "", ["add {\"a\": 1, \"b\": 2}"] },
        { ToolCallFormat.Llama3, "{\"city\": \"Paris\"} is JSON.", "{\"city\": \"Paris\"} is JSON.", [] },
        { ToolCallFormat.Llama3, "The set {1, 2} is small.", "The set {1, 2} is small.", [] },

        // Mistral Small 3.2, Devstral, Ministral; Mistral Nemo.
        { ToolCallFormat.Mistral, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", "", ["get_weather {\"city\": \"Paris\"}"] },
        { ToolCallFormat.Mistral, "Two calls.[TOOL_CALLS]get_weather[CALL_ID]abc123XYZ[ARGS]{\"city\":\"Paris\"}[TOOL_CALLS]add[ARGS]{\"a\":1,\"b\":2}", "Two calls.", ["get_weather {\"city\":\"Paris\"}", "add {\"a\":1,\"b\":2}"] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}, \"id\": \"abcdefghi\"}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]", "", ["add {\"a\": 1, \"b\": 2}", "get_weather {\"city\": \"Oslo\"}"] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"id\": \"x1Y2z3W4v\", \"name\": \"add\", \"arguments\": {}}, {\"name\": \"add\", \"arguments\": {\"a\": [1, {\"b\": \"}\"}]}, \"id\": 7}]", "", ["add {}", "add {\"a\": [1, {\"b\": \"}\"}]}"] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1}, \"id\": \"abc", "", ["add {\"a\": 1}"] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"delete_all\", \"arguments\": {}, \"id\": \"abcDEF123\"}]", "[TOOL_CALLS][{\"name\": \"delete_all\", \"arguments\": {}, \"id\": \"abcDEF123\"}]", [] },
        { ToolCallFormat.Mistral, "No [TOOL] here.", "No [TOOL] here.", [] },

        // A Nemo call held back for its id whose object then breaks is still a call; the rest is text.
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\":\"add\",\"arguments\":{\"a\":1}]", "]", ["add {\"a\":1}"] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\":\"add\",\"arguments\":{\"a\":1},\"id\":\"abcDEF123\"}, {\"name\":\"add\",\"arguments\":{\"b\":2},\"id\":\"x\\q\"}]", "q\"}]", ["add {\"a\":1}", "add {\"b\":2}"] },

        // functionary v3.2 (the generation prompt ends with ">>>").
        { ToolCallFormat.FunctionaryV32, "all\nSure, calling.>>>get_weather\n{\"city\": \"Paris\"}", "Sure, calling.", ["get_weather {\"city\": \"Paris\"}"] },
        { ToolCallFormat.FunctionaryV32, "add\n{\"a\": 1, \"b\": 2}>>>get_weather\n{\"city\": \"Rome\"}", "", ["add {\"a\": 1, \"b\": 2}", "get_weather {\"city\": \"Rome\"}"] },
        { ToolCallFormat.FunctionaryV32, "all\nJust text, a >> b.", "Just text, a >> b.", [] },

        // The generic JSON form.
        { ToolCallFormat.Generic, "{\"tool_call\": {\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}}", "", ["add {\"a\": 1, \"b\": 2}"] },
        { ToolCallFormat.Generic, "{\"tool_calls\": [{\"name\": \"add\", \"arguments\": {\"a\": 1}, \"id\": \"x1\"}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]}", "", ["add {\"a\": 1}", "get_weather {\"city\": \"Paris\"}"] },
        { ToolCallFormat.Generic, "{\"response\": \"Hi \\\"there\\\" \\u00e9 \\ud83d\\ude00\"}", "Hi \"there\" é 😀", [] },
        { ToolCallFormat.Generic, "Once upon a time {there} was", "Once upon a time {there} was", [] },
        { ToolCallFormat.Generic, "{\"answer\": 42}", "{\"answer\": 42}", [] },

        // Arguments written as a JSON string holding an object are that object (as llama.cpp reads them); null is
        // {}; a string that holds no object stays the string it was.
        { ToolCallFormat.Hermes, "<tool_call>{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}</tool_call>", "", ["get_weather {\"city\": \"Paris\"}"] },
        { ToolCallFormat.Llama3, "{\"name\": \"add\", \"parameters\": \"{\\\"a\\\":1,\\\"b\\\":2}\"}", "", ["add {\"a\":1,\"b\":2}"] },
        { ToolCallFormat.Generic, "{\"tool_call\": {\"name\": \"add\", \"arguments\": null}}", "", ["add {}"] },
        { ToolCallFormat.Hermes, "<tool_call>{\"name\": \"add\", \"arguments\": \"a, b\"}</tool_call>", "", ["add \"a, b\""] },
    };

    [Theory]
    [MemberData(nameof(Outputs))]
    public void Parses_canned_output(ToolCallFormat format, string output, string text, string[] calls)
    {
        var result = Parse(format, [output]);
        Assert.Equal(text, result.Text);
        Assert.Equal(calls, result.Calls);
    }

    [Theory]
    [MemberData(nameof(Outputs))]
    public void Any_split_gives_the_unsplit_result(ToolCallFormat format, string output, string text, string[] calls)
    {
        _ = text;
        _ = calls;
        var whole = Parse(format, [output]);
        for (var split = 0; split <= output.Length; split++)
        {
            var parts = Parse(format, [output[..split], output[split..]]);
            Assert.Equal(whole, parts);
        }

        Assert.Equal(whole, Parse(format, output.Select(c => c.ToString())));
    }

    [Theory]
    [InlineData(ToolCallFormat.Hermes, "Hello <tool", "Hello ")]
    [InlineData(ToolCallFormat.Hermes, "Hello <x", "Hello <x")]
    [InlineData(ToolCallFormat.Hermes, "a<tool_call>{\"na", "a")]
    [InlineData(ToolCallFormat.Mistral, "Hi [TOOL_", "Hi ")]
    [InlineData(ToolCallFormat.Llama3, "  {\"name\": \"add\"", "")]
    [InlineData(ToolCallFormat.Llama3, "Sure {", "Sure {")]
    [InlineData(ToolCallFormat.Generic, "{\"response\": \"Hel", "Hel")]
    [InlineData(ToolCallFormat.Generic, "Hello", "Hello")]
    public void Holds_back_only_what_may_start_a_call(ToolCallFormat format, string pushed, string released)
    {
        var sink = new RecordingSink();
        var parser = new ToolCallParser(sink, format, new HashSet<string>(ToolNames));
        parser.Push(pushed);
        Assert.Equal(released, sink.Text.ToString());
        Assert.Empty(sink.Calls);
    }

    public static TheoryData<ToolCallFormat, string, string, string, string[]> UnfinishedOutputs => new()
    {
        // Output, its content when cut off (max tokens), its content when the model ended it, the calls.
        { ToolCallFormat.Hermes, "Let me check.<tool_call>\n{ \"name\" :\"get_weather", "Let me check.", "Let me check.<tool_call>\n{ \"name\" :\"get_weather", [] },
        { ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call", "", "</tool_call", ["add {}"] },
        { ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>\n<to", "", "\n<to", ["add {}"] },
        { ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>\n<tool_call>", "", "<tool_call>", ["add {}"] },
        { ToolCallFormat.Hermes, "<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>\nDone <", "\nDone ", "\nDone <", ["add {}"] },
        { ToolCallFormat.Hermes, "Is 1 <", "Is 1 ", "Is 1 <", [] },
        { ToolCallFormat.Hermes, "Is 1 < 2", "Is 1 < 2", "Is 1 < 2", [] },
        { ToolCallFormat.Mistral, "Hi [TOOL_", "Hi ", "Hi [TOOL_", [] },
        { ToolCallFormat.Llama3, "  {\"name\": \"ad", "", "  {\"name\": \"ad", [] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"na", "", "[TOOL_CALLS][{\"na", [] },
    };

    [Theory]
    [MemberData(nameof(UnfinishedOutputs))]
    public void Unfinished_markup_is_dropped_when_cut_off_and_content_when_the_model_ended(
        ToolCallFormat format, string output, string cutOffText, string endedText, string[] calls)
    {
        foreach (var pieces in new[] { [output], output.Select(c => c.ToString()).ToArray(), [output[..(output.Length / 2)], output[(output.Length / 2)..]] })
        {
            var cut = Parse(format, pieces, cutOff: true);
            Assert.Equal(cutOffText, cut.Text);
            Assert.Equal(calls, cut.Calls);

            var ended = Parse(format, pieces, cutOff: false);
            Assert.Equal(endedText, ended.Text);
            Assert.Equal(calls, ended.Calls);
        }
    }

    [Fact]
    public void Stage_drops_unfinished_markup_of_an_answer_cut_at_max_tokens()
    {
        var stage = new ToolCallStage(2, ToolCallFormat.Hermes, ToolNames, parallelCalls: true);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool", 20, null), events);
        stage.Process(new TextDelta(1, "<tool_call>\n{ \"name\" :\"get_weather", 9, null), events);
        stage.Process(new GenerationCompleted(0, FinishReason.Length, new GenerationUsage(1, 20, 21), new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero)), events);
        stage.Process(new GenerationCompleted(1, FinishReason.Length, new GenerationUsage(1, 9, 10), new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero)), events);

        Assert.Empty(events.OfType<TextDelta>());
        var started = Assert.Single(events.OfType<ToolCallStarted>());
        Assert.Equal((0, "get_weather"), (started.Choice, started.Name));
        Assert.Equal("{\"city\": \"Oslo\"}", string.Concat(events.OfType<ToolCallArgumentsDelta>().Select(a => a.Fragment)));
        Assert.All(events.OfType<GenerationCompleted>(), c => Assert.Equal(FinishReason.Length, c.FinishReason));
    }

    [Fact]
    public void Arguments_stream_before_the_call_ends()
    {
        var sink = new RecordingSink();
        var parser = new ToolCallParser(sink, ToolCallFormat.Hermes, new HashSet<string>(ToolNames));
        parser.Push("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa");
        Assert.Equal(["get_weather {\"city\": \"Pa"], sink.Calls.Select(c => c.Name + " " + c.Arguments));
    }

    public static TheoryData<ToolCallFormat, string, string?[]> WrittenIds => new()
    {
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1}, \"id\": \"abcDEF123\"}, {\"id\": \"xyz987ABC\", \"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]", ["abcDEF123", "xyz987ABC"] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1}, \"id\": \"a\\u0062cDEF123\", \"id\": \"second456\"}, {\"name\": \"add\", \"arguments\": {}}]", ["abcDEF123", null] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1}, \"id\": \"abcDEF", [null] },
        { ToolCallFormat.Mistral, "[TOOL_CALLS]get_weather[CALL_ID]abc123XYZ[ARGS]{\"city\":\"Paris\"}[TOOL_CALLS]add[ARGS]{\"a\":1}", ["abc123XYZ", null] },
        { ToolCallFormat.Hermes, "<tool_call>{\"name\": \"add\", \"arguments\": {}, \"id\": \"abcDEF123\"}</tool_call>", [null] },
        { ToolCallFormat.Generic, "{\"tool_calls\": [{\"name\": \"add\", \"arguments\": {\"a\": 1}, \"id\": \"call_1\"}]}", [null] },
    };

    [Theory]
    [MemberData(nameof(WrittenIds))]
    public void Reads_the_ids_the_model_writes_where_the_format_has_them(ToolCallFormat format, string output, string?[] ids)
    {
        Assert.Equal(ids, Parse(format, [output]).Ids);
        Assert.Equal(ids, Parse(format, output.Select(c => c.ToString())).Ids);
    }

    [Fact]
    public void A_nemo_call_starts_once_its_id_is_read()
    {
        var sink = new RecordingSink();
        var parser = new ToolCallParser(sink, ToolCallFormat.MistralNemo, new HashSet<string>(ToolNames));
        parser.Push("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc12");
        Assert.Empty(sink.Calls);

        parser.Push("3XYZ\"");
        var call = Assert.Single(sink.Calls);
        Assert.Equal(("get_weather", "abc123XYZ", "{\"city\": \"Paris\"}"), (call.Name, call.Id, call.Arguments.ToString()));
    }

    [Fact]
    public void A_nemo_call_cut_off_before_its_id_is_still_a_call()
    {
        var sink = new RecordingSink();
        var parser = new ToolCallParser(sink, ToolCallFormat.MistralNemo, new HashSet<string>(ToolNames));
        parser.Push("[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1");
        parser.Complete(cutOff: true);

        var call = Assert.Single(sink.Calls);
        Assert.Equal(("add", null, "{\"a\": 1"), (call.Name, call.Id, call.Arguments.ToString()));
        Assert.Empty(sink.Text.ToString());
    }

    public static TheoryData<ToolCallFormat, string, string[]> ReportedIds => new()
    {
        // Mistral's templates render the ids: a valid one the model wrote is the call's.
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1}, \"id\": \"abcDEF123\"}]", ["abcDEF123"] },
        { ToolCallFormat.Mistral, "[TOOL_CALLS]add[CALL_ID]abc123XYZ[ARGS]{\"a\":1}", ["abc123XYZ"] },

        // Not nine alphanumerics, or not the answer's first call with that id: a new one.
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {}, \"id\": \"call_1\"}, {\"name\": \"add\", \"arguments\": {}, \"id\": \"abc-12345\"}, {\"name\": \"add\", \"arguments\": {}, \"id\": \"abcdefghij\"}]", ["new", "new", "new"] },
        { ToolCallFormat.MistralNemo, "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {}, \"id\": \"sameSame1\"}, {\"name\": \"add\", \"arguments\": {}, \"id\": \"sameSame1\"}]", ["sameSame1", "new"] },
        { ToolCallFormat.Mistral, "[TOOL_CALLS]add[CALL_ID]abc123XYZ[ARGS]{}[TOOL_CALLS]add[CALL_ID]abc123XYZ[ARGS]{}[TOOL_CALLS]add[CALL_ID]é12345678[ARGS]{}", ["abc123XYZ", "new", "new"] },

        // Formats whose templates render no model-written id keep the engine's.
        { ToolCallFormat.Hermes, "<tool_call>{\"name\": \"add\", \"arguments\": {}, \"id\": \"abcDEF123\"}</tool_call>", ["new"] },
        { ToolCallFormat.Generic, "{\"tool_calls\": [{\"name\": \"add\", \"arguments\": {}, \"id\": \"abcDEF123\"}]}", ["new"] },
    };

    [Theory]
    [MemberData(nameof(ReportedIds))]
    public void Stage_reports_the_id_the_model_wrote_when_valid_and_unique_else_a_new_one(ToolCallFormat format, string output, string[] expected)
    {
        foreach (var pieces in new string[][] { [output], output.Select(c => c.ToString()).ToArray() })
        {
            var stage = new ToolCallStage(1, format, ToolNames, parallelCalls: true);
            var events = new List<GenerationEvent>();
            foreach (var piece in pieces)
            {
                stage.Process(new TextDelta(0, piece, 1, null), events);
            }

            stage.Process(Completed(FinishReason.Stop), events);
            var ids = events.OfType<ToolCallStarted>().Select(s => s.Id).ToList();
            Assert.Equal(expected.Length, ids.Count);
            Assert.Equal(ids.Count, ids.Distinct().Count());
            for (var i = 0; i < expected.Length; i++)
            {
                if (expected[i] != "new")
                {
                    Assert.Equal(expected[i], ids[i]);
                    continue;
                }

                Assert.DoesNotContain(ids[i], output, StringComparison.Ordinal);
                Assert.Matches(ToolCallFormats.WantsShortIds(format) ? "^[A-Za-z0-9]{9}$" : "^call_[A-Za-z0-9]{24}$", ids[i]);
            }
        }
    }

    [Fact]
    public void Stage_gives_a_new_id_to_a_call_whose_model_id_is_already_in_the_conversation()
    {
        // The model copied an id from its prompt: the client's own, or the short id its template rendered for one.
        var stage = new ToolCallStage(1, ToolCallFormat.Mistral, ToolNames, parallelCalls: true, conversationIds: ["abc123XYZ", "Y5rNPpZcs"]);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "[TOOL_CALLS]add[CALL_ID]abc123XYZ[ARGS]{}[TOOL_CALLS]add[CALL_ID]Y5rNPpZcs[ARGS]{}[TOOL_CALLS]add[CALL_ID]fresh1234[ARGS]{}", 1, null), events);
        stage.Process(Completed(FinishReason.Stop), events);

        var ids = events.OfType<ToolCallStarted>().Select(s => s.Id).ToList();
        Assert.Equal(3, ids.Count);
        Assert.All(ids.Take(2), id => Assert.DoesNotContain(id, new[] { "abc123XYZ", "Y5rNPpZcs" }));
        Assert.All(ids, id => Assert.Matches("^[A-Za-z0-9]{9}$", id));
        Assert.Equal("fresh1234", ids[2]);
    }

    [Fact]
    public void Stage_streams_a_nemo_call_with_the_models_id_on_its_first_event()
    {
        const string Output = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123XYZ\"}]";
        var stage = new ToolCallStage(1, ToolCallFormat.MistralNemo, ToolNames, parallelCalls: true);
        var events = new List<GenerationEvent>();
        foreach (var c in Output)
        {
            stage.Process(new TextDelta(0, c.ToString(), 1, null), events);
        }

        stage.Process(Completed(FinishReason.Stop), events);
        var started = Assert.IsType<ToolCallStarted>(events[0]);
        Assert.Equal(("get_weather", "abc123XYZ"), (started.Name, started.Id));
        Assert.Equal("{\"city\": \"Paris\"}", string.Concat(events.OfType<ToolCallArgumentsDelta>().Select(a => a.Fragment)));
        Assert.Equal(FinishReason.ToolCalls, Assert.IsType<GenerationCompleted>(events[^1]).FinishReason);
        Assert.Empty(events.OfType<TextDelta>());
    }

    [Fact]
    public void Stage_reports_calls_with_ids_and_finishes_with_tool_calls()
    {
        var stage = new ToolCallStage(1, ToolCallFormat.Mistral, ToolNames, parallelCalls: true);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "[TOOL_CALLS]add[ARGS]{\"a\":", 3, null), events);
        stage.Process(new TextDelta(0, "1,\"b\":2}", 2, null), events);
        stage.Process(Completed(FinishReason.Stop), events);

        var started = Assert.Single(events.OfType<ToolCallStarted>());
        Assert.Equal("add", started.Name);
        Assert.Matches("^[A-Za-z0-9]{9}$", started.Id);
        Assert.Equal("{\"a\":1,\"b\":2}", string.Concat(events.OfType<ToolCallArgumentsDelta>().Select(a => a.Fragment)));
        Assert.Equal(FinishReason.ToolCalls, Assert.IsType<GenerationCompleted>(events[^1]).FinishReason);
        Assert.Empty(events.OfType<TextDelta>());
    }

    [Fact]
    public void Stage_ids_are_openai_style_and_one_call_when_not_parallel()
    {
        var stage = new ToolCallStage(1, ToolCallFormat.Hermes, ToolNames, parallelCalls: false);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 1}}</tool_call>", 9, null), events);
        stage.Process(Completed(FinishReason.Length), events);

        var started = Assert.Single(events.OfType<ToolCallStarted>());
        Assert.Matches("^call_[A-Za-z0-9]{24}$", started.Id);
        Assert.Equal("{}", string.Concat(events.OfType<ToolCallArgumentsDelta>().Select(a => a.Fragment)));
        Assert.Equal(FinishReason.Length, Assert.IsType<GenerationCompleted>(events[^1]).FinishReason);
    }

    [Fact]
    public void Stage_keeps_token_counts_with_released_text()
    {
        var stage = new ToolCallStage(1, ToolCallFormat.Hermes, ToolNames, parallelCalls: true);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "a <to", 2, null), events);
        stage.Process(new TextDelta(0, "y", 1, null), events);
        stage.Process(Completed(FinishReason.Stop), events);

        var texts = events.OfType<TextDelta>().ToList();
        Assert.Equal("a <toy", string.Concat(texts.Select(t => t.Text)));
        Assert.Equal(3, texts.Sum(t => t.Tokens));
        Assert.Equal(FinishReason.Stop, Assert.IsType<GenerationCompleted>(events[^1]).FinishReason);
    }

    /// <summary>
    /// OpenAI's <c>choices[].logprobs.content</c> covers the message content's tokens; a streamed answer with a call
    /// gets log-probabilities for its content tokens only, each token once, none for the tokens that wrote the call.
    /// </summary>
    [Fact]
    public void Stage_gives_content_the_log_probabilities_of_its_own_tokens_only()
    {
        string[] tokens = ["Sure", ".", "<tool_call>", "\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": ", "\"Paris\"}}", "\n</tool_call>", " Done", "!"];
        var stage = new ToolCallStage(1, ToolCallFormat.Hermes, ToolNames, parallelCalls: true);
        var events = new List<GenerationEvent>();
        foreach (var token in tokens)
        {
            stage.Process(new TextDelta(0, token, 1, [LogProb(token)]), events);
        }

        stage.Process(Completed(FinishReason.Stop), events);

        var texts = events.OfType<TextDelta>().ToList();
        Assert.Equal("Sure. Done!", string.Concat(texts.Select(t => t.Text)));
        Assert.Equal(["Sure", ".", " Done", "!"], texts.SelectMany(t => t.LogProbs!).Select(l => l.Token));
        Assert.Equal(4, texts.Sum(t => t.Tokens));
        Assert.Equal("{\"city\": \"Paris\"}", string.Concat(events.OfType<ToolCallArgumentsDelta>().Select(a => a.Fragment)));
    }

    [Fact]
    public void Stage_splits_a_delta_of_several_tokens_between_content_and_the_call_by_token()
    {
        // A delta can carry several tokens (text held back for a stop sequence): "Hi" and " <" wrote content (" <"
        // its space), the rest the call; a token that wrote any content is the content's, once.
        string[] tokens = ["Hi", " <", "tool_call>", "{\"name\": \"add\", \"arguments\": {}}", "</tool_call>"];
        var stage = new ToolCallStage(1, ToolCallFormat.Hermes, ToolNames, parallelCalls: true);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, string.Concat(tokens), tokens.Length, [.. tokens.Select(LogProb)]), events);
        stage.Process(new TextDelta(0, "\n", 1, [LogProb("\n")]), events);
        stage.Process(new TextDelta(0, string.Empty, 1, [LogProb(string.Empty)]), events);
        stage.Process(Completed(FinishReason.Stop), events);

        var text = Assert.Single(events.OfType<TextDelta>());
        Assert.Equal("Hi ", text.Text);
        Assert.Equal(["Hi", " <"], text.LogProbs!.Select(l => l.Token));
        Assert.Equal(2, text.Tokens);
        Assert.Equal("add", Assert.Single(events.OfType<ToolCallStarted>()).Name);
        Assert.Equal(FinishReason.ToolCalls, Assert.IsType<GenerationCompleted>(events[^1]).FinishReason);
    }

    [Fact]
    public void Stage_keeps_the_log_probabilities_of_textless_tokens_after_content()
    {
        var stage = new ToolCallStage(1, ToolCallFormat.Hermes, ToolNames, parallelCalls: true);
        var events = new List<GenerationEvent>();
        stage.Process(new TextDelta(0, "Hello", 1, [LogProb("Hello")]), events);
        stage.Process(new TextDelta(0, string.Empty, 1, [LogProb(string.Empty)]), events);
        stage.Process(Completed(FinishReason.Length), events);

        var texts = events.OfType<TextDelta>().ToList();
        Assert.Equal("Hello", string.Concat(texts.Select(t => t.Text)));
        Assert.Equal(["Hello", string.Empty], texts.SelectMany(t => t.LogProbs!).Select(l => l.Token));
    }

    private static TokenLogProb LogProb(string token) => new(token.Length, token, Encoding.UTF8.GetBytes(token), -0.5f, []);

    private static GenerationCompleted Completed(FinishReason reason) =>
        new(0, reason, new GenerationUsage(1, 0, 1), new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero));

    private static ParseResult Parse(ToolCallFormat format, IEnumerable<string> pieces, bool cutOff = false)
    {
        var sink = new RecordingSink();
        var parser = new ToolCallParser(sink, format, new HashSet<string>(ToolNames));
        foreach (var piece in pieces)
        {
            parser.Push(piece);
        }

        parser.Complete(cutOff);
        foreach (var call in sink.Calls)
        {
            // Whatever the split, what a call's arguments add up to is the JSON the model wrote.
            using var _ = JsonDocument.Parse(call.Arguments.ToString());
        }

        return new ParseResult(
            sink.Text.ToString(),
            string.Join("|", sink.Calls.Select(c => c.Name + "#" + c.Id + " " + c.Arguments)),
            sink.Calls.Select(c => c.Name + " " + c.Arguments).ToArray(),
            sink.Calls.Select(c => c.Id).ToArray());
    }

    private sealed record ParseResult(string Text, string Joined, string[] Calls, string?[] Ids)
    {
        public bool Equals(ParseResult? other) => other is not null && Text == other.Text && Joined == other.Joined;

        public override int GetHashCode() => HashCode.Combine(Text, Joined);
    }

    private sealed class RecordingSink : IToolCallSink
    {
        public StringBuilder Text { get; } = new();

        public List<(string Name, string? Id, StringBuilder Arguments)> Calls { get; } = [];

        public void OnText(string text)
        {
            Assert.NotEmpty(text);
            Text.Append(text);
        }

        public void OnCallStarted(string name, string? id) => Calls.Add((name, id, new StringBuilder()));

        public void OnArguments(string fragment) => Calls[^1].Arguments.Append(fragment);
    }
}
