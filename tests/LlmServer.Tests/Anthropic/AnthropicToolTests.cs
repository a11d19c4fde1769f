using System.Net;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.OpenAi;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Anthropic;

/// <summary>
/// Tools and prefill on <c>/v1/messages</c> over raw HTTP, on stories260K with the tools in the generic JSON form:
/// a tiny model never calls on its own, so the calls here are forced (<c>any</c> or a named tool) and the grammar
/// makes them valid. One call per answer (<c>disable_parallel_tool_use</c>): offered a list, a tiny model goes on
/// adding calls until the token limit.
/// </summary>
public sealed class AnthropicToolTests(ToolServerFixture fixture) : IClassFixture<ToolServerFixture>
{
    private const string Path = "/v1/messages";

    private const string Tools = $$$"""
        [{"name":"get_weather","description":"Weather in a city.","input_schema":{{{ToolCallingTests.WeatherSchema}}}},
         {"name":"add","description":"Add two digits.","input_schema":{{{ToolCallingTests.AddSchema}}}}]
        """;

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task Forced_call_is_a_tool_use_block_with_stop_reason_tool_use()
    {
        var (status, body, _) = await PostAsync(_client, Path, $$"""
            {"model":"stories260K","max_tokens":200,"temperature":0,"tools":{{Tools}},
             "tool_choice":{"type":"any","disable_parallel_tool_use":true},
             "messages":[{"role":"user","content":"What is the weather in Paris?"}]}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("tool_use", body.GetProperty("stop_reason").GetString());
        Assert.Equal(JsonValueKind.Null, body.GetProperty("stop_sequence").ValueKind);
        var block = Assert.Single(body.GetProperty("content").EnumerateArray());
        Assert.Equal("tool_use", block.GetProperty("type").GetString());
        Assert.Matches("^toolu_[A-Za-z0-9]{24}$", block.GetProperty("id").GetString());
        var name = block.GetProperty("name").GetString()!;
        var input = block.GetProperty("input");
        Assert.Equal(JsonValueKind.Object, input.ValueKind);
        ToolCallingTests.AssertMatchesSchema(name, input.GetRawText());
    }

    [Fact]
    public async Task Stream_sends_the_tool_use_block_events_in_anthropic_order()
    {
        using var response = await PostStreamAsync(_client, Path, $$"""
            {"model":"stories260K","max_tokens":200,"temperature":0,"stream":true,"tools":{{Tools}},
             "tool_choice":{"type":"tool","name":"get_weather","disable_parallel_tool_use":true},
             "messages":[{"role":"user","content":"Weather?"}]}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await NamedSse.ReadAllAsync(response);

        Assert.All(events, e => Assert.Equal(e.Name, e.Data.GetProperty("type").GetString()));
        var names = events.Where(e => e.Name != "ping").Select(e => e.Name).ToList();
        Assert.Equal(["message_start", "content_block_start"], names[..2]);
        Assert.Equal(["content_block_stop", "message_delta", "message_stop"], names[^3..]);
        Assert.All(names[2..^3], name => Assert.Equal("content_block_delta", name));
        Assert.True(names.Count > 5, "at least one input delta");
        Assert.Equal("ping", events[1].Name);

        var start = events.Single(e => e.Name == "content_block_start").Data;
        Assert.Equal(0, start.GetProperty("index").GetInt32());
        var block = start.GetProperty("content_block");
        Assert.Equal("tool_use", block.GetProperty("type").GetString());
        Assert.Matches("^toolu_[A-Za-z0-9]{24}$", block.GetProperty("id").GetString());
        Assert.Equal("get_weather", block.GetProperty("name").GetString());
        Assert.Empty(block.GetProperty("input").EnumerateObject());

        var json = string.Concat(events.Where(e => e.Name == "content_block_delta").Select(e =>
        {
            Assert.Equal(0, e.Data.GetProperty("index").GetInt32());
            var delta = e.Data.GetProperty("delta");
            Assert.Equal("input_json_delta", delta.GetProperty("type").GetString());
            return delta.GetProperty("partial_json").GetString();
        }));
        ToolCallingTests.AssertMatchesSchema("get_weather", json);
        Assert.Equal(0, events.Single(e => e.Name == "content_block_stop").Data.GetProperty("index").GetInt32());
        var messageDelta = events.Single(e => e.Name == "message_delta").Data;
        Assert.Equal("tool_use", messageDelta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.True(messageDelta.GetProperty("usage").GetProperty("output_tokens").GetInt32() > 0);
    }

    [Fact]
    public async Task Tool_results_are_rendered_into_the_prompt_as_chat_tool_messages_are()
    {
        // The same conversation through both APIs: Anthropic's prompt must be exactly the chat prompt. A failed
        // tool's result reads as an error in the prompt.
        var messages = """
            [{"role":"user","content":"Add 2 and 3, and 4 and 4."},
             {"role":"assistant","content":[{"type":"text","text":"Adding."},
                                            {"type":"tool_use","id":"call_1","name":"add","input":{"a":2,"b":3}},
                                            {"type":"tool_use","id":"call_2","name":"add","input":{"a":4,"b":4}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"5"},
                                       {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"overflow"}],"is_error":true},
                                       {"type":"text","text":"And now?"}]}]
            """;
        var chatMessages = """
            [{"role":"user","content":"Add 2 and 3, and 4 and 4."},
             {"role":"assistant","content":"Adding.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"add","arguments":"{\"a\":2,\"b\":3}"}},
                                                                   {"id":"call_2","type":"function","function":{"name":"add","arguments":"{\"a\":4,\"b\":4}"}}]},
             {"role":"tool","tool_call_id":"call_1","content":"5"},
             {"role":"tool","tool_call_id":"call_2","content":"Error: overflow"},
             {"role":"user","content":"And now?"}]
            """;

        var (status, counted, _) = await PostAsync(_client, "/v1/messages/count_tokens", $$"""{"messages":{{messages}},"tools":{{Tools}},"system":"You add."}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var (_, rendered, _) = await PostAsync(_client, "/apply-template", $$$"""{"messages":[{"role":"system","content":"You add."},{{{chatMessages[1..^1]}}}],"tools":{{{ToolCallingTests.ToolsJson}}}}""");
        var prompt = rendered.GetProperty("prompt").GetString()!;
        Assert.Contains("{\"tool_response\":{\"tool\":\"add\",\"id\":\"call_1\",\"content\":\"5\"}}", prompt, StringComparison.Ordinal);
        Assert.Contains("{\"tool_response\":{\"tool\":\"add\",\"id\":\"call_2\",\"content\":\"Error: overflow\"}}", prompt, StringComparison.Ordinal);
        var (_, tokens, _) = await PostAsync(_client, "/tokenize", JsonSerializer.Serialize(new { content = prompt, add_special = true, parse_special = true }));
        Assert.Equal(tokens.GetProperty("tokens").GetArrayLength(), counted.GetProperty("input_tokens").GetInt32());

        // And the model answers it: with tool_choice none, in text.
        var (answered, message, _) = await PostAsync(_client, Path, $$$"""{"max_tokens":8,"temperature":0,"messages":{{{messages}}},"tools":{{{Tools}}},"tool_choice":{"type":"none"}}""");
        Assert.Equal(HttpStatusCode.OK, answered);
        var block = Assert.Single(message.GetProperty("content").EnumerateArray());
        Assert.Equal("text", block.GetProperty("type").GetString());
        Assert.Contains(message.GetProperty("stop_reason").GetString(), (string[])["end_turn", "max_tokens"]);
    }

    [Fact]
    public async Task A_toolu_id_sent_back_renders_the_engine_call_id_as_the_chat_api_does()
    {
        // The generic format writes the ids into the prompt, so their spelling shows there.
        var (_, call, _) = await PostAsync(_client, Path, $$"""
            {"max_tokens":200,"temperature":0,"tools":{{Tools}},"tool_choice":{"type":"tool","name":"add","disable_parallel_tool_use":true},
             "messages":[{"role":"user","content":"Add 2 and 3."}]}
            """);
        var block = Assert.Single(call.GetProperty("content").EnumerateArray());
        var id = block.GetProperty("id").GetString()!;
        var input = block.GetProperty("input").GetRawText();
        var engineId = "call_" + id["toolu_".Length..];

        var messages = $$"""
            [{"role":"user","content":"Add 2 and 3."},
             {"role":"assistant","content":[{"type":"tool_use","id":"{{id}}","name":"add","input":{{input}}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"{{id}}","content":"5"}]}]
            """;
        var (status, counted, _) = await PostAsync(_client, "/v1/messages/count_tokens", $$"""{"messages":{{messages}},"tools":{{Tools}}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var (prompt, tokens) = await ChatPrompt.RenderAsync(_client, $$$"""
            {"messages":[{"role":"user","content":"Add 2 and 3."},{{{ChatPrompt.CallAndResult(engineId, "add", input, "5")[1..^1]}}}],"tools":{{{ToolCallingTests.ToolsJson}}}}
            """);

        Assert.Contains($"\"id\":\"{engineId}\"}}]}}", prompt, StringComparison.Ordinal);
        Assert.Contains($"{{\"tool_response\":{{\"tool\":\"add\",\"id\":\"{engineId}\",\"content\":\"5\"}}}}", prompt, StringComparison.Ordinal);
        Assert.Equal(tokens, counted.GetProperty("input_tokens").GetInt32());
    }

    [Fact]
    public async Task Tool_choice_none_streams_text_in_a_text_block()
    {
        using var response = await PostStreamAsync(_client, Path, $$"""
            {"max_tokens":6,"temperature":0,"stream":true,"tools":{{Tools}},"tool_choice":{"type":"none"},
             "messages":[{"role":"user","content":"Once upon a time"}]}
            """);
        var events = await NamedSse.ReadAllAsync(response);

        var names = events.Select(e => e.Name).ToList();
        Assert.Equal(["message_start", "content_block_start", "ping"], names[..3]);
        Assert.Equal("text", events[1].Data.GetProperty("content_block").GetProperty("type").GetString());
        Assert.All(events.Where(e => e.Name == "content_block_delta"), e => Assert.Equal("text_delta", e.Data.GetProperty("delta").GetProperty("type").GetString()));
        Assert.Equal("max_tokens", events.Single(e => e.Name == "message_delta").Data.GetProperty("delta").GetProperty("stop_reason").GetString());
    }

    [Fact]
    public async Task Final_assistant_message_is_continued()
    {
        // The prefilled prompt is the chat prompt up to the assistant's turn, then the prefill's text; greedy
        // sampling then continues exactly as a raw completion of that prompt does.
        var (_, rendered, _) = await PostAsync(_client, "/apply-template", """{"messages":[{"role":"user","content":"Tell me a story."}]}""");
        var prompt = rendered.GetProperty("prompt").GetString()! + "Once upon a time";

        var (status, message, _) = await PostAsync(_client, Path, """
            {"max_tokens":12,"temperature":0,
             "messages":[{"role":"user","content":"Tell me a story."},{"role":"assistant","content":[{"type":"text","text":"Once upon a time"}]}]}
            """);
        var (_, completion, _) = await PostAsync(_client, "/v1/completions", JsonSerializer.Serialize(new { prompt, max_tokens = 12, temperature = 0 }));

        Assert.Equal(HttpStatusCode.OK, status);
        var text = message.GetProperty("content")[0].GetProperty("text").GetString();
        Assert.False(string.IsNullOrEmpty(text));
        Assert.Equal(completion.GetProperty("choices")[0].GetProperty("text").GetString(), text);
        Assert.Equal(completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), message.GetProperty("usage").GetProperty("input_tokens").GetInt32() + message.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""[{"name":"f"}]""", null, "tools[0].input_schema")]
    [InlineData("""[{"name":"f","input_schema":"x"}]""", null, "tools[0].input_schema")]
    [InlineData("""[{"name":"has space","input_schema":{"type":"object"}}]""", null, "tools[0].name")]
    [InlineData("""[{"name":"f","input_schema":{"type":"object"}},{"name":"f","input_schema":{"type":"object"}}]""", null, "tools[1].name")]
    [InlineData("""[{"type":"web_search_20250305","name":"web_search"}]""", null, "tools[0].type")]
    [InlineData("""[{"name":"f","input_schema":{"type":"object"}}]""", """{"type":"tool","name":"g"}""", "tool_choice")]
    [InlineData("""[{"name":"f","input_schema":{"type":"object"}}]""", """{"type":"tool"}""", "tool_choice.name")]
    [InlineData("""[{"name":"f","input_schema":{"type":"object"}}]""", """{"type":"sometimes"}""", "tool_choice")]
    [InlineData("[]", """{"type":"any"}""", "tool_choice")]
    [InlineData("""[{"name":"f","input_schema":{"type":"object"}},{"name":"g","input_schema":{"type":"object","properties":{"a":{"type":"string","minLength":5000}},"required":["a"]}}]""", """{"type":"any"}""", "tools[1].input_schema")]
    [InlineData("""[{"name":"f","input_schema":{"$ref":"#"}}]""", """{"type":"tool","name":"f"}""", "tools[0].input_schema")]
    public async Task Bad_tools_are_invalid_request_errors_naming_the_field(string tools, string? toolChoice, string field)
    {
        var choice = toolChoice is null ? string.Empty : $",\"tool_choice\":{toolChoice}";
        var (status, body, _) = await PostAsync(_client, Path, $$"""{"max_tokens":4,"tools":{{tools}}{{choice}},"messages":[{"role":"user","content":"Hi"}]}""");

        AssertInvalidRequest(status, body, field);
    }

    [Theory]
    [InlineData("""[{"role":"user","content":[{"type":"tool_result","content":"5"}]}]""", "tool_use_id")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":"x"}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"5"}]}]""", "messages[1].content[0].input")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]}]""", "tool_result")]
    [InlineData("""[{"role":"user","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]}]""", "tool_use")]
    [InlineData("""[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"t1","content":"5"}]}]""", "tool_result")]
    [InlineData("""[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"5"}]}]""", "messages[0].content[0].tool_use_id")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":"5"}]}]""", "messages[2].content[0].tool_use_id")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"5"},{"type":"tool_result","tool_use_id":"t1","content":"6"}]}]""", "messages[2].content[1].tool_use_id")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}},{"type":"tool_use","id":"t2","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"5"}]}]""", "messages[2].content: messages[1] has tool_use blocks with no tool_result block here: t2.")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},{"role":"user","content":"Go on."}]""", "no tool_result block here: toolu_1.")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"assistant","content":"More."}]""", "messages[2].content")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}},{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"5"}]}]""", "messages[1].content[1].id: 't1'")]
    public async Task Bad_tool_blocks_are_invalid_request_errors_naming_the_field(string messages, string field)
    {
        var (status, body, _) = await PostAsync(_client, Path, $$"""{"max_tokens":4,"messages":{{messages}}}""");

        AssertInvalidRequest(status, body, field);
    }

    private static void AssertInvalidRequest(HttpStatusCode status, JsonElement body, string field)
    {
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("error", body.GetProperty("type").GetString());
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains(field, error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
