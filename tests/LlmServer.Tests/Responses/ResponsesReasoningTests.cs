using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.OpenAi;
using OpenAI.Responses;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

#pragma warning disable OPENAI001 // The SDK marks the Responses client experimental.

namespace LlmServer.Tests.Responses;

/// <summary>A reasoning model's thinking as Responses <c>reasoning</c> items, through Qwen3's template and crafted output.</summary>
public sealed class ResponsesReasoningTests(Qwen3ScriptedServerFixture fixture) : IClassFixture<Qwen3ScriptedServerFixture>
{
    private const string Path = "/v1/responses";
    private const string Tools = ""","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]""";

    /// <summary>Qwen3's shape of a call it thought about first.</summary>
    private const string ThoughtCall = "<think>\\nI need the weather.\\n</think>\\n\\n<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\"}}\\n</tool_call>";

    private readonly TestServer _server = fixture.Server;

    private HttpClient Client => _server.Client;

    private static string Say(string output, string extra = "", int maxTokens = 200) =>
        "{\"input\":\"" + ScriptedOutput.Prefix + output + "\",\"max_output_tokens\":" + maxTokens + extra + "}";

    [Fact]
    public async Task The_reasoning_is_an_item_before_the_message()
    {
        var (status, json, _) = await PostAsync(Client, Path, Say(ReasoningTests.Thinking));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("completed", json.GetProperty("status").GetString());
        var output = json.GetProperty("output");
        Assert.Equal(2, output.GetArrayLength());
        AssertReasoningItem(output[0], "completed", "The user greets me.");
        Assert.Equal("message", output[1].GetProperty("type").GetString());
        Assert.Equal("Hello there.", output[1].GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("Hello there.", json.GetProperty("output_text").GetString());

        // Reasoning tokens are output tokens; the details say how many.
        var usage = json.GetProperty("usage");
        Assert.InRange(usage.GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32(), 1, usage.GetProperty("output_tokens").GetInt32() - 1);
    }

    [Theory]
    [InlineData("<think>\\n\\n</think>", false)]
    [InlineData("<think>\\n\\n</think>\\n\\nHi.", true)]
    [InlineData("<think>\\nHm.\\n</think>", false)]
    [InlineData("<think>\\nHm.\\n</think>\\n\\nHi.", true)]
    [InlineData("<think>\\nHm.", false)]
    public async Task Reasoning_tokens_are_the_block_with_its_tags_streamed_or_not(string output, bool answered)
    {
        var (status, json, _) = await PostAsync(Client, Path, Say(output));
        using var response = await PostStreamAsync(Client, Path, Say(output, ",\"stream\":true"));
        var final = (await NamedSse.ReadAllAsync(response))[^1].Data.GetProperty("response");

        // Counted as chat's reasoning_tokens: through the closing tag, so all output tokens when no answer follows.
        Assert.Equal(HttpStatusCode.OK, status);
        foreach (var usage in new[] { json.GetProperty("usage"), final.GetProperty("usage") })
        {
            var outputTokens = usage.GetProperty("output_tokens").GetInt32();
            var reasoningTokens = usage.GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32();
            Assert.InRange(reasoningTokens, 1, answered ? outputTokens - 1 : outputTokens);
            Assert.True(answered || reasoningTokens == outputTokens, $"{reasoningTokens} of {outputTokens} output tokens are reasoning");
        }
    }

    [Fact]
    public async Task An_answer_without_a_block_has_no_reasoning_item()
    {
        var (status, json, _) = await PostAsync(Client, Path, Say("Hello."));

        Assert.Equal(HttpStatusCode.OK, status);
        var item = Assert.Single(json.GetProperty("output").EnumerateArray());
        Assert.Equal("message", item.GetProperty("type").GetString());
        Assert.Equal("Hello.", json.GetProperty("output_text").GetString());
        Assert.Equal(0, json.GetProperty("usage").GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task A_stream_sends_the_reasoning_item_then_the_message_with_its_index_shifted()
    {
        using var response = await PostStreamAsync(Client, Path, Say(ReasoningTests.Thinking, ",\"stream\":true"));
        var events = await NamedSse.ReadAllAsync(response);

        Assert.All(events, e => Assert.Equal(e.Name, e.Data.GetProperty("type").GetString()));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Data.GetProperty("sequence_number").GetInt32()));
        Assert.Equal(
            [
                "response.created", "response.in_progress",
                "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
                "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
                "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                "response.output_text.done", "response.content_part.done", "response.output_item.done",
                "response.completed",
            ],
            Runs(events.Select(e => e.Name)));

        // The reasoning item: index 0, one reasoning_text part, its deltas and done naming the item.
        var added = events.First(e => e.Name == "response.output_item.added").Data;
        Assert.Equal(0, added.GetProperty("output_index").GetInt32());
        var reasoningId = added.GetProperty("item").GetProperty("id").GetString()!;
        Assert.StartsWith("rs_", reasoningId, StringComparison.Ordinal);
        Assert.Equal("reasoning", added.GetProperty("item").GetProperty("type").GetString());
        Assert.Equal(0, added.GetProperty("item").GetProperty("content").GetArrayLength());
        var part = events.First(e => e.Name == "response.content_part.added").Data;
        Assert.Equal(reasoningId, part.GetProperty("item_id").GetString());
        Assert.Equal("reasoning_text", part.GetProperty("part").GetProperty("type").GetString());
        var reasoningDeltas = events.Where(e => e.Name == "response.reasoning_text.delta").Select(e => e.Data).ToList();
        Assert.All(reasoningDeltas, d =>
        {
            Assert.Equal(reasoningId, d.GetProperty("item_id").GetString());
            Assert.Equal(0, d.GetProperty("output_index").GetInt32());
            Assert.Equal(0, d.GetProperty("content_index").GetInt32());
        });
        Assert.Equal("The user greets me.", string.Concat(reasoningDeltas.Select(d => d.GetProperty("delta").GetString())));
        Assert.Equal("The user greets me.", events.Single(e => e.Name == "response.reasoning_text.done").Data.GetProperty("text").GetString());
        var itemsDone = events.Where(e => e.Name == "response.output_item.done").Select(e => e.Data).ToList();
        AssertReasoningItem(itemsDone[0].GetProperty("item"), "completed", "The user greets me.");

        // The message comes after it, at index 1.
        var textDeltas = events.Where(e => e.Name == "response.output_text.delta").Select(e => e.Data).ToList();
        Assert.All(textDeltas, d => Assert.Equal(1, d.GetProperty("output_index").GetInt32()));
        Assert.Equal("Hello there.", string.Concat(textDeltas.Select(d => d.GetProperty("delta").GetString())));
        Assert.Equal(1, itemsDone[1].GetProperty("output_index").GetInt32());
        Assert.Equal("message", itemsDone[1].GetProperty("item").GetProperty("type").GetString());

        var final = events[^1].Data.GetProperty("response");
        Assert.Equal(["reasoning", "message"], final.GetProperty("output").EnumerateArray().Select(i => i.GetProperty("type").GetString()));
        Assert.Equal(reasoningId, final.GetProperty("output")[0].GetProperty("id").GetString());
        Assert.Equal("Hello there.", final.GetProperty("output_text").GetString());
        var usage = final.GetProperty("usage");
        Assert.InRange(usage.GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32(), 1, usage.GetProperty("output_tokens").GetInt32() - 1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_answer_that_only_thought_has_only_its_reasoning_item(bool stream)
    {
        var body = Say("<think>\\nOnly thought.", stream ? ",\"stream\":true" : string.Empty);
        JsonElement final;
        if (stream)
        {
            using var response = await PostStreamAsync(Client, Path, body);
            var events = await NamedSse.ReadAllAsync(response);
            Assert.Single(events, e => e.Name == "response.output_item.added");
            final = events[^1].Data.GetProperty("response");
        }
        else
        {
            (_, final, _) = await PostAsync(Client, Path, body);
        }

        AssertReasoningItem(Assert.Single(final.GetProperty("output").EnumerateArray()), "completed", "Only thought.");
        Assert.Equal(string.Empty, final.GetProperty("output_text").GetString());
    }

    [Fact]
    public async Task Official_sdk_reads_the_reasoning_item_and_its_stream()
    {
        var client = new ResponsesClient(new ApiKeyCredential("any-key"), new ResponsesClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
        ResponseResult response = await client.CreateResponseAsync(new CreateResponseOptions
        {
            MaxOutputTokenCount = 200,
            InputItems = { ResponseItem.CreateUserMessageItem(ScriptedOutput.Prefix + ReasoningTests.Thinking.Replace("\\n", "\n", StringComparison.Ordinal)) },
        });

        Assert.IsType<ReasoningResponseItem>(response.OutputItems[0]);
        Assert.IsAssignableFrom<MessageResponseItem>(response.OutputItems[1]);
        Assert.Equal("Hello there.", response.GetOutputText());
        Assert.InRange(response.Usage.OutputTokenDetails.ReasoningTokenCount, 1, response.Usage.OutputTokenCount - 1);

        var reasoning = new StringBuilder();
        ResponseResult? final = null;
        var updates = await client.CreateResponseStreamingAsync(new CreateResponseOptions
        {
            MaxOutputTokenCount = 200,
            StreamingEnabled = true,
            InputItems = { ResponseItem.CreateUserMessageItem(ScriptedOutput.Prefix + ReasoningTests.Thinking.Replace("\\n", "\n", StringComparison.Ordinal)) },
        });
        await foreach (var update in updates)
        {
            switch (update)
            {
                case StreamingResponseReasoningTextDeltaUpdate delta:
                    reasoning.Append(delta.Delta);
                    break;
                case StreamingResponseCompletedUpdate completed:
                    final = completed.Response;
                    break;
            }
        }

        Assert.Equal("The user greets me.", reasoning.ToString());
        Assert.NotNull(final);
        Assert.IsType<ReasoningResponseItem>(final.OutputItems[0]);
        Assert.Equal("Hello there.", final.GetOutputText());
    }

    [Fact]
    public async Task Reasoning_effort_none_turns_thinking_off_and_the_reasoning_is_echoed()
    {
        // Qwen3 then closes an empty block after the generation prompt: more prompt tokens.
        var (_, thinking, _) = await PostAsync(Client, Path, Say("Hello.", ",\"reasoning\":{\"effort\":\"high\",\"summary\":\"auto\"}"));
        var (status, notThinking, _) = await PostAsync(Client, Path, Say("Hello.", ",\"reasoning\":{\"effort\":\"none\"}"));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(
            notThinking.GetProperty("usage").GetProperty("input_tokens").GetInt32() > thinking.GetProperty("usage").GetProperty("input_tokens").GetInt32(),
            "effort none rendered the same prompt");
        Assert.Equal("high", thinking.GetProperty("reasoning").GetProperty("effort").GetString());
        Assert.Equal("auto", thinking.GetProperty("reasoning").GetProperty("summary").GetString());
        Assert.Equal("none", notThinking.GetProperty("reasoning").GetProperty("effort").GetString());
        Assert.Equal("Hello.", notThinking.GetProperty("output_text").GetString());
    }

    [Theory]
    [InlineData("{\"effort\":\"maximal\"}", "reasoning.effort")]
    [InlineData("{\"effort\":3}", "reasoning.effort")]
    [InlineData("{\"summary\":\"short\"}", "reasoning.summary")]
    public async Task An_unknown_reasoning_value_is_refused(string reasoning, string param)
    {
        var (status, json, _) = await PostAsync(Client, Path, Say("x", ",\"reasoning\":" + reasoning));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", param);
    }

    [Fact]
    public async Task A_reasoning_item_replayed_or_stored_reaches_the_prompt_in_a_tool_loop()
    {
        // The call comes after the last user message: Qwen3 renders the reasoning the history gives that turn.
        var (status, first, _) = await PostAsync(Client, Path, Say(ThoughtCall, Tools, maxTokens: 400));
        Assert.Equal(HttpStatusCode.OK, status);
        var output = first.GetProperty("output");
        Assert.Equal(["reasoning", "function_call"], output.EnumerateArray().Select(i => i.GetProperty("type").GetString()));
        AssertReasoningItem(output[0], "completed", "I need the weather.");
        var callId = output[1].GetProperty("call_id").GetString();

        // Stored: GET keeps the reasoning item.
        using (var stored = await Client.GetAsync(Path + "/" + first.GetProperty("id").GetString()))
        {
            var storedOutput = JsonDocument.Parse(await stored.Content.ReadAsStringAsync()).RootElement.GetProperty("output");
            AssertReasoningItem(storedOutput[0], "completed", "I need the weather.");
        }

        var user = "{\"role\":\"user\",\"content\":\"" + ScriptedOutput.Prefix + ThoughtCall + "\"}";
        var callOutput = "{\"type\":\"function_call_output\",\"call_id\":\"" + callId + "\",\"output\":\"Sunny\"}";
        var replayed = await InputTokensAsync("\"input\":[" + user + "," + output[0].GetRawText() + "," + output[1].GetRawText() + "," + callOutput + "],\"store\":false");
        var withoutReasoning = await InputTokensAsync("\"input\":[" + user + "," + output[1].GetRawText() + "," + callOutput + "],\"store\":false");
        var continuation = "\"previous_response_id\":\"" + first.GetProperty("id").GetString() + "\",\"input\":[" + callOutput + "]";

        // Not stored, the continuation is rendered afresh (a stored one reuses the tokens the model wrote, which the
        // scripting grammar splits finer than the tokenizer would).
        var continued = await InputTokensAsync(continuation + ",\"store\":false");

        // The model reads again the chain of thought it wrote, replayed or continued alike.
        Assert.True(replayed > withoutReasoning, $"the reasoning did not reach the prompt: {replayed} tokens, {withoutReasoning} without it");
        Assert.Equal(replayed, continued);

        // Stored, the continuation's prompt holds what the model wrote, its reasoning included: the chain's KV cache
        // serves it past the first prompt and the reasoning.
        var (_, kept, _) = await PostAsync(Client, Path, "{" + continuation + ",\"max_output_tokens\":1" + Tools + "}");
        var usage = kept.GetProperty("usage");
        var firstUsage = first.GetProperty("usage");
        Assert.True(
            usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32()
                > firstUsage.GetProperty("input_tokens").GetInt32() + firstUsage.GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32(),
            usage.ToString());
    }

    [Fact]
    public async Task The_template_drops_reasoning_before_the_last_user_message()
    {
        var user = "{\"role\":\"user\",\"content\":\"Hi\"}";
        var reasoning = "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"The user greets me.\"}]}";
        var answer = "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello.\"}]}";
        var next = "{\"role\":\"user\",\"content\":\"And now?\"}";

        var replayed = await InputTokensAsync("\"input\":[" + user + "," + reasoning + "," + answer + "," + next + "],\"store\":false");
        var withoutReasoning = await InputTokensAsync("\"input\":[" + user + "," + answer + "," + next + "],\"store\":false");

        Assert.Equal(withoutReasoning, replayed);
    }

    [Fact]
    public async Task An_answer_that_only_thought_is_the_same_turn_replayed_or_continued()
    {
        var (status, first, _) = await PostAsync(Client, Path, Say("<think>\\nOnly thought.", Tools));
        Assert.Equal(HttpStatusCode.OK, status);
        var reasoning = Assert.Single(first.GetProperty("output").EnumerateArray());

        var user = "{\"role\":\"user\",\"content\":\"" + ScriptedOutput.Prefix + "<think>\\nOnly thought.\"}";
        var next = "{\"role\":\"user\",\"content\":\"Go on.\"}";
        var replayed = await InputTokensAsync("\"input\":[" + user + "," + reasoning.GetRawText() + "," + next + "],\"store\":false");
        var continued = await InputTokensAsync("\"previous_response_id\":\"" + first.GetProperty("id").GetString() + "\",\"input\":[" + next + "]");

        Assert.Equal(replayed, continued);
    }

    [Theory]
    [InlineData("[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"Hm.\"}]}]", "input[1]")]
    [InlineData("[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"Hm.\"}]},{\"role\":\"assistant\",\"content\":\"Hello.\"}]", "input[1].content")]
    [InlineData("[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":\"reasoning\",\"summary\":[],\"content\":[]},{\"role\":\"assistant\",\"content\":\"Hello.\"}]", "input[1].content")]
    [InlineData("[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"output_text\",\"text\":\"Hm.\"}]},{\"role\":\"assistant\",\"content\":\"Hello.\"}]", "input[1].content")]
    [InlineData("[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"get_weather\",\"arguments\":\"{}\"},{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"Hm.\"}]},{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"Sunny\"}]", "input[1].call_id")]
    [InlineData("[{\"role\":\"user\",\"content\":\"Hi\"},{\"type\":[\"reasoning\"],\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"Hm.\"}]},{\"role\":\"assistant\",\"content\":\"Hello.\"}]", "input[1].type")]
    public async Task A_misplaced_empty_or_mistyped_reasoning_item_is_refused(string input, string param)
    {
        var (status, json, _) = await PostAsync(Client, Path, "{\"input\":" + input + Tools + "}");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", param);
    }

    private async Task<int> InputTokensAsync(string fields)
    {
        var (status, json, _) = await PostAsync(Client, Path, "{" + fields + ",\"max_output_tokens\":1" + Tools + "}");
        Assert.True(status == HttpStatusCode.OK, json.ToString());
        return json.GetProperty("usage").GetProperty("input_tokens").GetInt32();
    }

    private static void AssertReasoningItem(JsonElement item, string status, string text)
    {
        Assert.Equal("reasoning", item.GetProperty("type").GetString());
        Assert.StartsWith("rs_", item.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal(status, item.GetProperty("status").GetString());
        Assert.Equal(0, item.GetProperty("summary").GetArrayLength());
        var part = Assert.Single(item.GetProperty("content").EnumerateArray());
        Assert.Equal("reasoning_text", part.GetProperty("type").GetString());
        Assert.Equal(text, part.GetProperty("text").GetString());
    }

    /// <summary>The names with each run of repeats (the deltas, however many) as one.</summary>
    private static List<string> Runs(IEnumerable<string> names)
    {
        var runs = new List<string>();
        foreach (var name in names)
        {
            if (runs.Count == 0 || runs[^1] != name)
            {
                runs.Add(name);
            }
        }

        return runs;
    }
}
