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

/// <summary>
/// Function tools on <c>/v1/responses</c>, on stories260K with the tools in the generic JSON form (as the chat tool
/// tests): a tiny model never calls on its own, so the calls here are required or named, and the grammar makes them
/// valid. One call per answer: offered a list, a tiny model goes on adding calls until the token limit.
/// </summary>
public sealed class ResponsesToolTests(ToolServerFixture fixture) : IClassFixture<ToolServerFixture>
{
    private const string ModelId = "stories260K";

    private const string ToolsJson = $$$"""
        [{"type":"function","name":"get_weather","description":"Weather in a city.","parameters":{{{ToolCallingTests.WeatherSchema}}},"strict":true},
         {"type":"function","name":"add","description":"Add two digits.","parameters":{{{ToolCallingTests.AddSchema}}}}]
        """;

    private readonly TestServer _server = fixture.Server;

    [Fact]
    public async Task Official_sdk_gets_a_required_call_and_continues_after_its_output_through_previous_response_id()
    {
        var client = Client();
        ResponseResult call = await client.CreateResponseAsync(Options(ResponseToolChoice.CreateRequiredChoice(), ResponseItem.CreateUserMessageItem("What is the weather in Paris?")));

        Assert.Equal(ResponseStatus.Completed, call.Status);
        var item = Assert.IsType<FunctionCallResponseItem>(Assert.Single(call.OutputItems));
        Assert.StartsWith("fc_", item.Id, StringComparison.Ordinal);
        Assert.Matches("^call_[A-Za-z0-9]{24}$", item.CallId);
        Assert.Contains(item.FunctionName, (string[])["get_weather", "add"]);
        ToolCallingTests.AssertMatchesSchema(item.FunctionName, item.FunctionArguments.ToString());
        Assert.True(string.IsNullOrEmpty(call.GetOutputText()));

        // The stored response holds the call: its output alone continues the conversation, from the warm KV cache
        // (the same tools and choice keep the prompt's prefix; the model calls again, as it must).
        ResponseResult next = await client.CreateResponseAsync(Options(
            ResponseToolChoice.CreateRequiredChoice(),
            ResponseItem.CreateFunctionCallOutputItem(item.CallId, "Sunny, 21 degrees."),
            previousResponseId: call.Id));

        Assert.Equal(call.Id, next.PreviousResponseId);
        var again = Assert.IsType<FunctionCallResponseItem>(Assert.Single(next.OutputItems));
        Assert.NotEqual(item.CallId, again.CallId);
        Assert.True(next.Usage.InputTokenCount > call.Usage.InputTokenCount + call.Usage.OutputTokenCount);
        Assert.True(next.Usage.InputTokenDetails.CachedTokenCount > call.Usage.InputTokenCount / 2, $"cached {next.Usage.InputTokenDetails.CachedTokenCount} of {next.Usage.InputTokenCount}");
    }

    [Fact]
    public async Task Official_sdk_streams_a_named_call()
    {
        var client = Client();
        var options = Options(ResponseToolChoice.CreateFunctionChoice("add"), ResponseItem.CreateUserMessageItem("Add two and three."));
        options.StreamingEnabled = true;
        var deltas = new StringBuilder();
        FunctionCallResponseItem? added = null;
        FunctionCallResponseItem? done = null;
        ResponseResult? final = null;
        var updates = await client.CreateResponseStreamingAsync(options);
        await foreach (var update in updates)
        {
            switch (update)
            {
                case StreamingResponseOutputItemAddedUpdate { Item: FunctionCallResponseItem item }:
                    added = item;
                    break;
                case StreamingResponseFunctionCallArgumentsDeltaUpdate delta:
                    deltas.Append(delta.Delta.ToString());
                    break;
                case StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem item }:
                    done = item;
                    break;
                case StreamingResponseCompletedUpdate completed:
                    final = completed.Response;
                    break;
            }
        }

        Assert.NotNull(added);
        Assert.NotNull(done);
        Assert.NotNull(final);
        Assert.Equal("add", added.FunctionName);
        Assert.Equal(added.CallId, done.CallId);
        Assert.Equal(deltas.ToString(), done.FunctionArguments.ToString());
        ToolCallingTests.AssertMatchesSchema("add", done.FunctionArguments.ToString());
        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(final.OutputItems));
        Assert.Equal(done.CallId, call.CallId);
        Assert.Equal(deltas.ToString(), call.FunctionArguments.ToString());
    }

    [Fact]
    public async Task Stream_sends_function_call_events_in_the_official_order()
    {
        var body = $$"""{"model":"{{ModelId}}","input":"Weather?","tools":{{ToolsJson}},"tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":false,"max_output_tokens":200,"temperature":0,"stream":true}""";
        using var response = await PostStreamAsync(_server.Client, "/v1/responses", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await NamedSse.ReadAllAsync(response);

        Assert.All(events, e => Assert.Equal(e.Name, e.Data.GetProperty("type").GetString()));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Data.GetProperty("sequence_number").GetInt32()));
        var names = events.Select(e => e.Name).ToList();
        Assert.Equal(["response.created", "response.in_progress", "response.output_item.added"], names[..3]);
        Assert.Equal(["response.function_call_arguments.done", "response.output_item.done", "response.completed"], names[^3..]);
        Assert.All(names[3..^3], name => Assert.Equal("response.function_call_arguments.delta", name));
        Assert.True(names.Count > 6, "at least one arguments delta");

        var added = events[2].Data;
        Assert.Equal(0, added.GetProperty("output_index").GetInt32());
        var item = added.GetProperty("item");
        Assert.Equal("function_call", item.GetProperty("type").GetString());
        Assert.Equal("in_progress", item.GetProperty("status").GetString());
        Assert.Equal("get_weather", item.GetProperty("name").GetString());
        Assert.Equal(string.Empty, item.GetProperty("arguments").GetString());
        var itemId = item.GetProperty("id").GetString();
        var callId = item.GetProperty("call_id").GetString();
        Assert.StartsWith("call_", callId, StringComparison.Ordinal);

        var arguments = string.Concat(events[3..^3].Select(e =>
        {
            Assert.Equal(itemId, e.Data.GetProperty("item_id").GetString());
            Assert.Equal(0, e.Data.GetProperty("output_index").GetInt32());
            return e.Data.GetProperty("delta").GetString();
        }));
        ToolCallingTests.AssertMatchesSchema("get_weather", arguments);
        Assert.Equal(arguments, events[^3].Data.GetProperty("arguments").GetString());
        Assert.Equal(itemId, events[^3].Data.GetProperty("item_id").GetString());

        var doneItem = events[^2].Data.GetProperty("item");
        Assert.Equal("completed", doneItem.GetProperty("status").GetString());
        Assert.Equal(callId, doneItem.GetProperty("call_id").GetString());
        Assert.Equal(arguments, doneItem.GetProperty("arguments").GetString());

        var final = events[^1].Data.GetProperty("response");
        Assert.Equal("completed", final.GetProperty("status").GetString());
        Assert.Equal(doneItem.ToString(), Assert.Single(final.GetProperty("output").EnumerateArray()).ToString());
        Assert.Equal("function", final.GetProperty("tool_choice").GetProperty("type").GetString());
        Assert.Equal(2, final.GetProperty("tools").GetArrayLength());
        Assert.False(final.GetProperty("parallel_tool_calls").GetBoolean());
    }

    [Fact]
    public async Task Function_call_output_is_rendered_into_the_prompt_as_the_chat_tool_message_is()
    {
        // The same conversation through both APIs: the Responses prompt must be exactly the chat prompt.
        const string Arguments = """{\"a\":2,\"b\":3}""";
        var responsesBody = $$"""
            {"input":[{"role":"user","content":"Add 2 and 3."},
                      {"type":"function_call","call_id":"call_1","name":"add","arguments":"{{Arguments}}"},
                      {"type":"function_call_output","call_id":"call_1","output":"5"}],
             "tools":{{ToolsJson}},"tool_choice":"none","max_output_tokens":1,"store":false}
            """;
        var chatBody = $$$"""
            {"messages":[{"role":"user","content":"Add 2 and 3."},
                         {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"add","arguments":"{{{Arguments}}}"}}]},
                         {"role":"tool","tool_call_id":"call_1","content":"5"}],
             "tools":{{{ToolCallingTests.ToolsJson}}},"tool_choice":"none"}
            """;

        var (status, response, _) = await PostAsync(_server.Client, "/v1/responses", responsesBody);
        Assert.Equal(HttpStatusCode.OK, status);
        var (_, rendered, _) = await PostAsync(_server.Client, "/apply-template", chatBody);
        var prompt = rendered.GetProperty("prompt").GetString()!;
        Assert.Contains("{\"tool_calls\":[{\"name\":\"add\",\"arguments\":{\"a\":2,\"b\":3},\"id\":\"call_1\"}]}", prompt, StringComparison.Ordinal);
        Assert.Contains("{\"tool_response\":{\"tool\":\"add\",\"id\":\"call_1\",\"content\":\"5\"}}", prompt, StringComparison.Ordinal);
        var (_, tokens, _) = await PostAsync(_server.Client, "/tokenize", JsonSerializer.Serialize(new { content = prompt, add_special = true, parse_special = true }));

        Assert.Equal(tokens.GetProperty("tokens").GetArrayLength(), response.GetProperty("usage").GetProperty("input_tokens").GetInt32());
    }

    [Fact]
    public async Task Tool_choice_none_answers_with_a_message_and_echoes_the_tools()
    {
        var (status, body, _) = await PostAsync(_server.Client, "/v1/responses", $$"""{"input":"Once upon a time","tools":{{ToolsJson}},"tool_choice":"none","max_output_tokens":8,"temperature":0}""");

        Assert.Equal(HttpStatusCode.OK, status);
        var item = Assert.Single(body.GetProperty("output").EnumerateArray());
        Assert.Equal("message", item.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(body.GetProperty("output_text").GetString()));
        Assert.Equal("none", body.GetProperty("tool_choice").GetString());
        var tool = body.GetProperty("tools")[0];
        Assert.Equal("function", tool.GetProperty("type").GetString());
        Assert.Equal("get_weather", tool.GetProperty("name").GetString());
        Assert.True(tool.GetProperty("strict").GetBoolean());
        Assert.Equal("object", tool.GetProperty("parameters").GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("""[{"type":"function","description":"no name"}]""", "\"auto\"", "tools[0].name")]
    [InlineData("""[{"type":"function","name":"has space"}]""", "\"auto\"", "tools[0].name")]
    [InlineData("""[{"type":"web_search"}]""", "\"auto\"", "tools[0].type")]
    [InlineData("""[{"type":"function","name":"f","parameters":"text"}]""", "\"auto\"", "tools[0].parameters")]
    [InlineData("""[{"type":"function","name":"f"},{"type":"function","name":"f"}]""", "\"auto\"", "tools[1].name")]
    [InlineData("""[{"type":"function","name":"f"}]""", """{"type":"function","name":"g"}""", "tool_choice")]
    [InlineData("""[{"type":"function","name":"f"}]""", """{"type":"function","function":{"name":"f"}}""", "tool_choice")]
    [InlineData("""[{"type":"function","name":"f"}]""", "\"sometimes\"", "tool_choice")]
    [InlineData("[]", "\"required\"", "tool_choice")]
    [InlineData("\"f\"", "\"auto\"", "tools")]
    [InlineData("""[{"type":"function","name":"f","parameters":{"type":"object","properties":{"x":{"not":{}}}}}]""", "\"required\"", "tools[0].parameters")]
    [InlineData("""[{"type":"function","name":"f"},{"type":"function","name":"g","parameters":{"type":"object","properties":{"a":{"type":"string","minLength":5000}},"required":["a"]}}]""", "\"required\"", "tools[1].parameters")]
    public async Task Bad_tools_are_refused_naming_the_field(string tools, string toolChoice, string param)
    {
        var (status, body, _) = await PostAsync(_server.Client, "/v1/responses", $$"""{"input":"Hi","tools":{{tools}},"tool_choice":{{toolChoice}},"max_output_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", param);
    }

    /// <summary>The rule chat completions and Anthropic share (ToolCallAnswers), each refusal naming its input item's field.</summary>
    [Theory]
    [InlineData("""[{"type":"function_call_output","call_id":"call_x","output":"5"}]""", "input[0].call_id")]
    [InlineData("""[{"type":"function_call","call_id":"call_x","arguments":"{}"}]""", "input[0].name")]
    [InlineData("""[{"type":"function_call","call_id":"call_x","name":"add"}]""", "input[0].arguments")]
    [InlineData("""[{"type":"function_call","call_id":"","name":"add","arguments":"{}"}]""", "input[0].call_id")]
    [InlineData("""[{"type":"function_call_output","output":"5"}]""", "input[0].call_id")]
    [InlineData("""[{"type":"function_call","call_id":"call_x","name":"add","arguments":"{}"},{"type":"function_call_output","call_id":"call_x"}]""", "input[1].output")]
    [InlineData("""[{"role":"user","content":"Add."},{"type":"function_call","call_id":"call_x","name":"add","arguments":"{}"},{"role":"user","content":"And?"}]""", "input[1].call_id")]
    [InlineData("""[{"role":"user","content":"Add."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{}"},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{}"}]""", "input[2].call_id")]
    [InlineData("""[{"role":"user","content":"Add."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{}"},{"type":"function_call_output","call_id":"call_a","output":"5"},{"type":"function_call_output","call_id":"call_a","output":"5"}]""", "input[3].call_id")]
    [InlineData("""[{"role":"user","content":"Add."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{}"},{"type":"function_call_output","call_id":"call_a","output":"5"},{"role":"user","content":"Again."},{"type":"function_call_output","call_id":"call_a","output":"5"}]""", "input[4].call_id")]
    [InlineData("""[{"role":"user","content":"Add."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{}"},{"type":"function_call","call_id":"call_b","name":"add","arguments":"{}"},{"type":"function_call_output","call_id":"call_a","output":"5"}]""", "input[2].call_id")]
    [InlineData("""[{"role":"user","content":"Add."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{}"},{"type":"function_call_output","call_id":"call_a","output":"5"},{"type":"function_call","call_id":"call_b","name":"add","arguments":"{}"}]""", "input[3].call_id")]
    [InlineData("""[{"role":"user","content":"Add."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{}"},{"role":"assistant","content":"Done."},{"type":"function_call_output","call_id":"call_a","output":"5"}]""", "input[1].call_id")]
    [InlineData("""[{"type":"function_call","call_id":"call_x","name":"add","arguments":{"a":1}}]""", "input[0].arguments", "Invalid type for 'input[0].arguments': expected a string, but got an object instead.")]
    [InlineData("""[{"type":"function_call","call_id":7,"name":"add","arguments":"{}"}]""", "input[0].call_id", "Invalid type for 'input[0].call_id': expected a string, but got a number instead.")]
    [InlineData("""[{"type":"function_call","call_id":"call_x","name":["add"],"arguments":"{}"}]""", "input[0].name", "Invalid type for 'input[0].name': expected a string, but got an array instead.")]
    [InlineData("""[{"type":"function_call_output","call_id":true,"output":"5"}]""", "input[0].call_id", "Invalid type for 'input[0].call_id': expected a string, but got a boolean instead.")]
    [InlineData("""[{"role":1,"content":"Hi"}]""", "input[0].role", "Invalid type for 'input[0].role': expected a string, but got a number instead.")]
    [InlineData("""[{"role":"user","content":"Hi"},{"type":{"kind":"function_call"},"call_id":"call_x","name":"add","arguments":"{}"}]""", "input[1].type", "Invalid type for 'input[1].type': expected a string, but got an object instead.")]
    [InlineData("""[{"type":7,"call_id":"call_x","output":{"sum":5}}]""", "input[0].type", "Invalid type for 'input[0].type': expected a string, but got a number instead.")]
    [InlineData("""[{"role":"user","content":7}]""", "input[0].content", "Invalid value for 'input[0].content': expected a string or an array of content parts.")]
    [InlineData("""[{"role":"user","content":"Add."},{"role":"assistant","content":[{"type":"refusal","refusal":"No."}]}]""", "input[1].content", "Invalid value for 'input[1].content': content parts of type 'refusal' are not supported; only input_text and output_text parts are.")]
    [InlineData("""[{"type":"function_call","call_id":"call_x","name":"add","arguments":"{}"},{"type":"function_call_output","call_id":"call_x","output":{"sum":5}}]""", "input[1].output", "Invalid value for 'input[1].output': expected a string or an array of content parts.")]
    [InlineData("""[{"type":"function_call","call_id":"call_x","name":"add","arguments":"{}"},{"type":"function_call_output","call_id":"call_x","output":["5"]}]""", "input[1].output", "Invalid value for 'input[1].output': each content part must be an object such as {\"type\":\"input_text\",\"text\":\"...\"}.")]
    public async Task Bad_tool_items_are_refused_naming_the_field(string input, string param, string? message = null)
    {
        var (status, body, _) = await PostAsync(_server.Client, "/v1/responses", $$"""{"input":{{input}},"max_output_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", param);
        if (message is not null)
        {
            Assert.Equal(message, body.GetProperty("error").GetProperty("message").GetString());
        }
    }

    [Theory]
    [InlineData("""[{"role":"user","content":"Add 2 and 3, then 4 and 5."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{\"a\":2,\"b\":3}"},{"type":"function_call_output","call_id":"call_a","output":"5"},{"type":"function_call","call_id":"call_b","name":"add","arguments":"{\"a\":4,\"b\":5}"},{"type":"function_call_output","call_id":"call_b","output":"9"}]""")]
    [InlineData("""[{"role":"user","content":"Add 2 and 3, and 4 and 5."},{"role":"assistant","content":"Adding."},{"type":"function_call","call_id":"call_a","name":"add","arguments":"{\"a\":2,\"b\":3}"},{"type":"function_call","call_id":"call_b","name":"add","arguments":"{\"a\":4,\"b\":5}"},{"type":"function_call_output","call_id":"call_b","output":"9"},{"type":"function_call_output","call_id":"call_a","output":"5"},{"role":"user","content":"Thanks."}]""")]
    public async Task Calls_answered_in_turn_or_in_any_order_within_their_turn_are_accepted(string input)
    {
        var (status, body, _) = await PostAsync(_server.Client, "/v1/responses", $$"""{"input":{{input}},"tools":{{ToolsJson}},"tool_choice":"none","max_output_tokens":1,"store":false}""");

        Assert.True(status == HttpStatusCode.OK, body.ToString());
    }

    [Fact]
    public async Task A_continued_response_must_answer_its_previous_calls_before_anything_else()
    {
        var (status, call, _) = await PostAsync(
            _server.Client,
            "/v1/responses",
            $$"""{"input":"What is the weather in Paris?","tools":{{ToolsJson}},"tool_choice":"required","parallel_tool_calls":false,"max_output_tokens":200,"temperature":0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var callItem = Assert.Single(call.GetProperty("output").EnumerateArray());
        var callId = callItem.GetProperty("call_id").GetString()!;
        var id = call.GetProperty("id").GetString()!;

        // A message before the call's output, an output for another call, an output twice, the previous response's
        // own call re-sent before its output (a duplicate, as OpenAI says): each refused, naming the item.
        (string Input, string Param, string Says)[] refused =
        [
            ("""[{"role":"user","content":"And tomorrow?"}]""", "input", callId),
            ("""[{"type":"function_call_output","call_id":"call_other","output":"Rain."}]""", "input[0].call_id", "call_id"),
            ($$"""[{"type":"function_call_output","call_id":"{{callId}}","output":"Sun."},{"type":"function_call_output","call_id":"{{callId}}","output":"Sun."}]""", "input[1].call_id", "call_id"),
            ($$"""[{{callItem.GetRawText()}},{"type":"function_call_output","call_id":"{{callId}}","output":"Sun."}]""", "input[0].call_id", $"function call of response '{id}', which 'previous_response_id' continues"),
        ];
        foreach (var (input, param, says) in refused)
        {
            var (refusedStatus, body, _) = await PostAsync(
                _server.Client, "/v1/responses", $$"""{"previous_response_id":"{{id}}","input":{{input}},"tools":{{ToolsJson}},"max_output_tokens":1}""");
            Assert.Equal(HttpStatusCode.BadRequest, refusedStatus);
            AssertOpenAiError(body, "invalid_request_error", param);
            Assert.Contains(says, body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        var (answered, _, _) = await PostAsync(
            _server.Client,
            "/v1/responses",
            $$"""{"previous_response_id":"{{id}}","input":[{"type":"function_call_output","call_id":"{{callId}}","output":"Sun."},{"role":"user","content":"And tomorrow?"}],"tools":{{ToolsJson}},"tool_choice":"none","max_output_tokens":1}""");
        Assert.Equal(HttpStatusCode.OK, answered);
    }

    private static CreateResponseOptions Options(ResponseToolChoice choice, ResponseItem input, string? previousResponseId = null)
    {
        var options = new CreateResponseOptions
        {
            Model = ModelId,
            MaxOutputTokenCount = 200,
            Temperature = 0,
            ToolChoice = choice,
            ParallelToolCallsEnabled = false,
            PreviousResponseId = previousResponseId,
            InputItems = { input },
        };
        options.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(ToolCallingTests.WeatherSchema), strictModeEnabled: true, functionDescription: "Weather in a city."));
        options.Tools.Add(ResponseTool.CreateFunctionTool("add", BinaryData.FromString(ToolCallingTests.AddSchema), strictModeEnabled: true, functionDescription: "Add two digits."));
        return options;
    }

    private ResponsesClient Client() =>
        new(new ApiKeyCredential("any-key"), new ResponsesClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
}
