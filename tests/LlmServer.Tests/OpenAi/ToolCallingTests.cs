using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using OpenAI;
using OpenAI.Chat;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>
/// Slots of 2048 tokens: stories260K's vocabulary is small, so tool schemas in the prompt take many tokens (the
/// model was trained on 512, which only makes its text stranger, not the format of its calls).
/// </summary>
public sealed class ToolServerFixture : IAsyncLifetime
{
    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(extraArgs: ["--Scheduler:Slots=2", "--Scheduler:ContextSize=4096"]);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>
/// Tool calling on stories260K (no chat template: the tools go into the prompt in the generic JSON form). A tiny
/// model never calls on its own, so the calls here are required or named: the grammar makes them valid.
/// </summary>
public sealed class ToolCallingTests(ToolServerFixture fixture) : IClassFixture<ToolServerFixture>
{
    private const string ModelId = "stories260K";

    internal const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string","enum":["Paris","Rome","Oslo"]},"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","days"]}""";

    internal const string AddSchema = """{"type":"object","properties":{"a":{"type":"integer","minimum":0,"maximum":9},"b":{"type":"integer","minimum":0,"maximum":9}},"required":["a","b"]}""";

    /// <summary>The <c>add</c> tool alone, in the chat shape.</summary>
    internal const string AddToolJson = $$$"""[{"type":"function","function":{"name":"add","description":"Add two digits.","parameters":{{{AddSchema}}}}}]""";

    internal const string ToolsJson = $$$"""
        [{"type":"function","function":{"name":"get_weather","description":"Weather in a city.","parameters":{{{WeatherSchema}}}}},
         {"type":"function","function":{"name":"add","description":"Add two digits.","parameters":{{{AddSchema}}}}}]
        """;

    private readonly HttpClient _client = fixture.Server.Client;
    private readonly Uri _endpoint = new(fixture.Server.BaseAddress, "/v1");

    [Fact]
    public async Task Official_sdk_gets_a_required_call_whose_arguments_match_the_schema_then_a_text_answer()
    {
        var client = OfficialClient();
        var options = Options(ChatToolChoice.CreateRequiredChoice());
        List<OpenAI.Chat.ChatMessage> messages = [new SystemChatMessage("You help."), new UserChatMessage("What is the weather in Paris?")];

        ChatCompletion call = await client.CompleteChatAsync(messages, options);

        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, call.FinishReason);
        var toolCall = Assert.Single(call.ToolCalls);
        Assert.Matches("^call_[A-Za-z0-9]{24}$", toolCall.Id);
        Assert.Contains(toolCall.FunctionName, (string[])["get_weather", "add"]);
        AssertMatchesSchema(toolCall.FunctionName, toolCall.FunctionArguments.ToString());

        // The result goes back; with tool_choice none the model answers in text.
        messages.Add(new AssistantChatMessage(call));
        messages.Add(new ToolChatMessage(toolCall.Id, "Sunny, 21 degrees."));
        ChatCompletion answer = await client.CompleteChatAsync(messages, Options(ChatToolChoice.CreateNoneChoice()));

        Assert.Empty(answer.ToolCalls);
        Assert.Contains(answer.FinishReason, (OpenAI.Chat.ChatFinishReason[])[OpenAI.Chat.ChatFinishReason.Stop, OpenAI.Chat.ChatFinishReason.Length]);
        Assert.False(string.IsNullOrEmpty(answer.Content[0].Text));
    }

    [Fact]
    public async Task Official_sdk_streams_a_named_call_as_openai_does()
    {
        var client = OfficialClient();
        var ids = new List<string>();
        string? name = null;
        var arguments = new StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Add two and three.")], Options(ChatToolChoice.CreateFunctionChoice("add"))))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                Assert.Equal(0, part.Index);
                if (part.ToolCallId is { } id)
                {
                    ids.Add(id);
                    name = part.FunctionName;
                }

                arguments.Append(part.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Single(ids);
        Assert.Equal("add", name);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
        AssertMatchesSchema("add", arguments.ToString());
    }

    [Fact]
    public async Task Streamed_chunks_have_openai_shape()
    {
        var body = $$$"""{"model":"{{{ModelId}}}","messages":[{"role":"user","content":"Weather?"}],"tools":{{{ToolsJson}}},"tool_choice":{"type":"function","function":{"name":"get_weather"}},"stream":true,"max_tokens":200,"temperature":0}""";
        using var response = await PostStreamAsync(_client, ChatPath, body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var transcript = await ReadAllEventsAsync(response);
        var chunks = transcript.Items.Where(i => !i.IsComment && i.Data != "[DONE]").Select(i => JsonDocument.Parse(i.Data).RootElement.GetProperty("choices")).Where(c => c.GetArrayLength() > 0).Select(c => c[0]).ToList();
        var toolChunks = chunks.Where(c => c.GetProperty("delta").TryGetProperty("tool_calls", out _)).Select(c => c.GetProperty("delta").GetProperty("tool_calls")[0]).ToList();

        Assert.True(toolChunks.Count >= 2);
        var first = toolChunks[0];
        Assert.Equal(0, first.GetProperty("index").GetInt32());
        Assert.StartsWith("call_", first.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("function", first.GetProperty("type").GetString());
        Assert.Equal("get_weather", first.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal(string.Empty, first.GetProperty("function").GetProperty("arguments").GetString());
        foreach (var later in toolChunks.Skip(1))
        {
            Assert.Equal(0, later.GetProperty("index").GetInt32());
            Assert.False(later.TryGetProperty("id", out _));
            Assert.False(later.GetProperty("function").TryGetProperty("name", out _));
        }

        AssertMatchesSchema("get_weather", string.Concat(toolChunks.Select(c => c.GetProperty("function").GetProperty("arguments").GetString())));
        Assert.Equal("tool_calls", chunks[^1].GetProperty("finish_reason").GetString());
    }

    /// <summary>
    /// OpenAI's <c>logprobs.content</c> is the log-probabilities of the message content's tokens: an answer that is
    /// all call (the generic form's JSON, every token of it) has none, streamed or not, and its call is intact.
    /// </summary>
    [Fact]
    public async Task A_call_only_answer_has_no_content_log_probabilities()
    {
        var body = $$$"""{"model":"{{{ModelId}}}","messages":[{"role":"user","content":"Weather?"}],"tools":{{{ToolsJson}}},"tool_choice":{"type":"function","function":{"name":"get_weather"}},"logprobs":true,"top_logprobs":1,"max_tokens":200,"temperature":0STREAM}""";
        using var response = await PostStreamAsync(_client, ChatPath, body.Replace("STREAM", ",\"stream\":true", StringComparison.Ordinal));
        var transcript = await ReadAllEventsAsync(response);
        var chunks = transcript.Items.Where(i => !i.IsComment && i.Data != "[DONE]").Select(i => JsonDocument.Parse(i.Data).RootElement.GetProperty("choices")).Where(c => c.GetArrayLength() > 0).Select(c => c[0]).ToList();
        var streamedContent = chunks
            .Where(c => c.TryGetProperty("logprobs", out var l) && l.ValueKind == JsonValueKind.Object)
            .SelectMany(c => c.GetProperty("logprobs").GetProperty("content").EnumerateArray())
            .ToList();
        Assert.Empty(streamedContent);
        AssertMatchesSchema("get_weather", string.Concat(chunks
            .Where(c => c.GetProperty("delta").TryGetProperty("tool_calls", out _))
            .Select(c => c.GetProperty("delta").GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString())));

        var (status, answer, _) = await PostAsync(_client, ChatPath, body.Replace("STREAM", string.Empty, StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = answer.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var logprobs = choice.GetProperty("logprobs");
        Assert.True(logprobs.ValueKind == JsonValueKind.Null || logprobs.GetProperty("content").GetArrayLength() == 0, $"No content, no content log-probabilities: {logprobs}");
    }

    [Fact]
    public async Task Tool_choice_none_gives_text()
    {
        var body = $$"""{"messages":[{"role":"user","content":"Once upon a time"}],"tools":{{ToolsJson}},"tool_choice":"none","max_tokens":16,"temperature":0}""";
        var (status, json, _) = await PostAsync(_client, ChatPath, body);

        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.False(message.TryGetProperty("tool_calls", out _));
        Assert.False(string.IsNullOrEmpty(message.GetProperty("content").GetString()));
        Assert.NotEqual("tool_calls", json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData("""[{"type":"function","function":{"description":"no name"}}]""", "\"auto\"", "tools[0].function.name")]
    [InlineData("""[{"type":"function","function":{"name":"has space"}}]""", "\"auto\"", "tools[0].function.name")]
    [InlineData("""[{"type":"retrieval"}]""", "\"auto\"", "tools[0].type")]
    [InlineData("""[{"type":"function","function":{"name":"f","parameters":"text"}}]""", "\"auto\"", "tools[0].function.parameters")]
    [InlineData("""[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]""", "\"auto\"", "tools[1].function.name")]
    [InlineData("""[{"type":"function","function":{"name":"f"}}]""", """{"type":"function","function":{"name":"g"}}""", "tool_choice")]
    [InlineData("""[{"type":"function","function":{"name":"f"}}]""", "\"sometimes\"", "tool_choice")]
    [InlineData("""[{"type":"function","function":{"name":"f"}}]""", "42", "tool_choice")]
    [InlineData("[]", "\"required\"", "tool_choice")]
    [InlineData("\"f\"", "\"auto\"", "tools")]
    [InlineData("""[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"not":{}}}}}}]""", "\"required\"", "tools[0].function.parameters")]
    [InlineData("""[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g","parameters":{"type":"object","properties":{"a":{"type":"string","minLength":5000}},"required":["a"]}}}]""", "\"required\"", "tools[1].function.parameters")]
    [InlineData("""[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g","parameters":{"$ref":"#"}}}]""", """{"type":"function","function":{"name":"g"}}""", "tools[1].function.parameters")]
    public async Task Bad_tools_are_refused_naming_the_field(string tools, string toolChoice, string param)
    {
        var body = $$"""{"messages":[{"role":"user","content":"Hi"}],"tools":{{tools}},"tool_choice":{{toolChoice}},"max_tokens":4}""";
        var (status, json, _) = await PostAsync(_client, ChatPath, body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", param);
    }

    [Theory]
    [InlineData("""[{"role":"tool","content":"3"}]""", "messages[0].tool_call_id")]
    [InlineData("""[{"role":"user","content":"Hi"},{"role":"assistant","tool_calls":[{"type":"function","function":{"arguments":"{}"}}]}]""", "messages[1].tool_calls[0].function.name")]
    public async Task Bad_tool_history_is_refused_naming_the_field(string messages, string param)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, $$"""{"messages":{{messages}},"max_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", param);
    }

    private const string UserAsks = """{"role":"user","content":"Add 2 and 3, then 4 and 5."}""";

    private const string TwoCalls = """{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"add","arguments":"{\"a\":2,\"b\":3}"}},{"id":"call_2","type":"function","function":{"name":"add","arguments":"{\"a\":4,\"b\":5}"}}]}""";

    private const string Answer1 = """{"role":"tool","tool_call_id":"call_1","content":"5"}""";

    private const string Answer2 = """{"role":"tool","tool_call_id":"call_2","content":"9"}""";

    /// <summary>As OpenAI: tool messages answer the calls of the assistant message right before them, each once, before any other message.</summary>
    [Theory]
    [InlineData($"[{UserAsks},{TwoCalls},{Answer1},{{\"role\":\"tool\",\"tool_call_id\":\"call_9\",\"content\":\"1\"}}]", "messages[3].tool_call_id", "call_9")]
    [InlineData($"[{UserAsks},{Answer1}]", "messages[1].tool_call_id", "call_1")]
    [InlineData($"[{UserAsks},{TwoCalls},{Answer1},{Answer1}]", "messages[3].tool_call_id", "call_1")]
    [InlineData($"[{UserAsks},{TwoCalls},{Answer1},{Answer2},{Answer2}]", "messages[4].tool_call_id", "call_2")]
    [InlineData($"[{UserAsks},{TwoCalls},{Answer2},{UserAsks}]", "messages[1].tool_calls", "call_1")]
    [InlineData($"[{UserAsks},{TwoCalls},{TwoCalls},{Answer1},{Answer2}]", "messages[1].tool_calls", "call_1, call_2")]
    [InlineData($"[{UserAsks},{TwoCalls},{Answer1}]", "messages[1].tool_calls", "call_2")]
    [InlineData($"[{UserAsks},{TwoCalls}]", "messages[1].tool_calls", "call_1, call_2")]
    public async Task Tool_messages_that_do_not_pair_with_the_calls_are_refused(string messages, string param, string ids)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, $$"""{"messages":{{messages}},"max_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", param);
        Assert.Contains(ids, json.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_call_without_an_id_is_refused()
    {
        var messages = """[{"role":"user","content":"Hi"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"add","arguments":"{}"}}]},{"role":"tool","tool_call_id":"","content":"3"}]""";
        var (status, json, _) = await PostAsync(_client, ChatPath, $$"""{"messages":{{messages}},"max_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", "messages[1].tool_calls[0].id");
    }

    [Fact]
    public async Task A_call_id_repeated_in_one_message_is_refused()
    {
        var twice = """{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"add","arguments":"{}"}},{"id":"call_1","type":"function","function":{"name":"add","arguments":"{}"}}]}""";
        var (status, json, _) = await PostAsync(_client, ChatPath, $$"""{"messages":[{{UserAsks}},{{twice}},{{Answer1}}],"max_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", "messages[1].tool_calls[1].id");
        Assert.Contains("call_1", json.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Parallel_calls_answered_in_any_order_are_accepted_and_run()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, $$"""{"messages":[{{UserAsks}},{{TwoCalls}},{{Answer2}},{{Answer1}},{{UserAsks}}],"max_tokens":4}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(json.GetProperty("usage").GetProperty("completion_tokens").GetInt32() > 0, json.ToString());
    }

    [Fact]
    public async Task Apply_template_renders_the_prompt_the_engine_runs()
    {
        var body = $$$"""{"messages":[{"role":"system","content":"You help."},{"role":"user","content":"Add 2 and 3."},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"add","arguments":"{\"a\":2,\"b\":3}"}}]},{"role":"tool","tool_call_id":"call_1","content":"5"}],"tools":{{{ToolsJson}}},"max_tokens":1}""";
        var (status, rendered, _) = await PostAsync(_client, "/apply-template", body);
        Assert.Equal(HttpStatusCode.OK, status);
        var prompt = rendered.GetProperty("prompt").GetString()!;
        Assert.Contains("You help.\n\nYou can call any of the following tools", prompt, StringComparison.Ordinal);
        Assert.Contains("\"name\":\"get_weather\"", prompt, StringComparison.Ordinal);
        Assert.Contains("{\"tool_calls\":[{\"name\":\"add\",\"arguments\":{\"a\":2,\"b\":3},\"id\":\"call_1\"}]}", prompt, StringComparison.Ordinal);
        Assert.Contains("{\"tool_response\":{\"tool\":\"add\",\"id\":\"call_1\",\"content\":\"5\"}}", prompt, StringComparison.Ordinal);

        // Exactly what generation runs: the same token count as the chat completion's prompt.
        var (_, tokens, _) = await PostAsync(_client, "/tokenize", JsonSerializer.Serialize(new { content = prompt, add_special = true, parse_special = true }));
        var (_, completion, _) = await PostAsync(_client, ChatPath, body);
        Assert.True(completion.TryGetProperty("usage", out _), completion.ToString());
        Assert.Equal(completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), tokens.GetProperty("tokens").GetArrayLength());
    }

    [Fact]
    public async Task Props_show_the_tool_call_format()
    {
        var props = JsonDocument.Parse(await _client.GetStringAsync("/props")).RootElement;
        Assert.Equal("generic", props.GetProperty("tool_call_format").GetString());
        Assert.Equal("generic", props.GetProperty("template_tool_call_format").GetString());
    }

    [Fact]
    public async Task Logit_bias_is_honoured()
    {
        var (_, tokenized, _) = await PostAsync(_client, "/tokenize", """{"content":" dragon","with_pieces":true}""");
        var token = tokenized.GetProperty("tokens")[0];
        var id = token.GetProperty("id").GetInt32();
        var piece = token.GetProperty("piece").GetString()!;

        var (status, json, _) = await PostAsync(_client, ChatPath, $$"""{"messages":[{"role":"user","content":"Hi"}],"logit_bias":{"{{id}}":100},"max_tokens":4,"temperature":0}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(string.Concat(Enumerable.Repeat(piece, 4)), json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Theory]
    [InlineData("""{"abc":1}""")]
    [InlineData("""{"1":101}""")]
    [InlineData("""{"99999999":1}""")]
    [InlineData("\"x\"")]
    public async Task Bad_logit_bias_is_refused(string bias)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, $$"""{"messages":[{"role":"user","content":"Hi"}],"logit_bias":{{bias}},"max_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", "logit_bias");
    }

    [Fact]
    public async Task Semantic_kernel_connector_runs_the_plugin_function_through_the_server()
    {
        var plugin = new Calculator();
#pragma warning disable SKEXP0010 // The endpoint overload is how Semantic Kernel talks to OpenAI-compatible servers.
        var builder = Kernel.CreateBuilder().AddOpenAIChatCompletion(ModelId, _endpoint, apiKey: "any-key");
#pragma warning restore SKEXP0010
        builder.Plugins.AddFromObject(plugin, "calc");
        var kernel = builder.Build();
        var settings = new OpenAIPromptExecutionSettings
        {
            FunctionChoiceBehavior = FunctionChoiceBehavior.Required(options: new FunctionChoiceBehaviorOptions { AllowParallelCalls = false }),
            Temperature = 0,
            MaxTokens = 120,
        };

        var reply = await kernel.InvokePromptAsync("Add two and three.", new KernelArguments(settings));

        Assert.True(plugin.Calls >= 1);
        Assert.NotNull(reply.GetValue<string>());
    }

    /// <summary>A chat completion's first choice is one call of <c>add</c>, its arguments matching the schema.</summary>
    internal static void AssertSingleAddCall(JsonElement completion)
    {
        var choice = completion.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var call = Assert.Single(choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray());
        Assert.Equal("add", call.GetProperty("function").GetProperty("name").GetString());
        AssertMatchesSchema("add", call.GetProperty("function").GetProperty("arguments").GetString()!);
    }

    /// <summary>The arguments parse and match the schemas above (the grammar enforces exactly these).</summary>
    internal static void AssertMatchesSchema(string function, string arguments)
    {
        using var document = JsonDocument.Parse(arguments);
        var root = document.RootElement;
        if (function == "get_weather")
        {
            Assert.Contains(root.GetProperty("city").GetString(), (string[])["Paris", "Rome", "Oslo"]);
            Assert.InRange(root.GetProperty("days").GetInt32(), 1, 7);
            Assert.Equal(2, root.EnumerateObject().Count());
        }
        else
        {
            Assert.Equal("add", function);
            Assert.InRange(root.GetProperty("a").GetInt32(), 0, 9);
            Assert.InRange(root.GetProperty("b").GetInt32(), 0, 9);
            Assert.Equal(2, root.EnumerateObject().Count());
        }
    }

    private static ChatCompletionOptions Options(ChatToolChoice choice)
    {
        // One call per answer: a tiny model offered a list of calls goes on adding calls until max_tokens.
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 200, Temperature = 0, ToolChoice = choice, AllowParallelToolCalls = false };
        options.Tools.Add(ChatTool.CreateFunctionTool("get_weather", "Weather in a city.", BinaryData.FromString(WeatherSchema)));
        options.Tools.Add(ChatTool.CreateFunctionTool("add", "Add two digits.", BinaryData.FromString(AddSchema)));
        return options;
    }

    private ChatClient OfficialClient() =>
        new(ModelId, new ApiKeyCredential("any-key"), new OpenAIClientOptions { Endpoint = _endpoint });

    private sealed class Calculator
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        [KernelFunction("add")]
        [System.ComponentModel.Description("Add two digits.")]
        public int Add(int a, int b)
        {
            Interlocked.Increment(ref _calls);
            return a + b;
        }
    }
}

/// <summary>stories260K served with a real template file that renders tools itself, in its own call syntax.</summary>
public abstract class TemplateToolServerFixture(string templateFile) : IAsyncLifetime
{
    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(extraArgs:
    [
        "--Scheduler:Slots=2",
        "--Scheduler:ContextSize=4096",
        "--Model:ChatTemplateFile=" + Path.Combine(LlmServer.Testing.ChatTemplateFixtures.Root, "templates", templateFile),
    ]);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Qwen 2.5's template: the Hermes syntax.</summary>
public sealed class HermesToolServerFixture() : TemplateToolServerFixture("Qwen-Qwen2.5-7B-Instruct.jinja");

/// <summary>Mistral Small 3.2's template: Mistral's syntax, and call ids of nine alphanumerics (it refuses others).</summary>
public sealed class MistralToolServerFixture() : TemplateToolServerFixture("Mistral-Small-3.2-24B-Instruct-2506.jinja");

/// <summary>Tools through a template that renders them itself: the prompt is the template's, the call its syntax.</summary>
public sealed class NativeTemplateToolCallingTests(HermesToolServerFixture fixture) : IClassFixture<HermesToolServerFixture>
{
    private const string Tools = ToolCallingTests.AddToolJson;

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task Props_show_the_hermes_format()
    {
        var props = JsonDocument.Parse(await _client.GetStringAsync("/props")).RootElement;
        Assert.Equal("hermes", props.GetProperty("tool_call_format").GetString());
        Assert.Equal("hermes", props.GetProperty("template_tool_call_format").GetString());
    }

    [Fact]
    public async Task History_arguments_that_are_not_json_are_refused_naming_the_call()
    {
        // The template takes arguments as objects, so it must parse them: the second call's cannot be.
        const string History = """[{"role":"user","content":"Add 2 and 3, and 4 and 5."},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"add","arguments":"{\"a\":2,\"b\":3}"}},{"id":"call_2","type":"function","function":{"name":"add","arguments":"{a: 4"}}]},{"role":"tool","tool_call_id":"call_1","content":"5"},{"role":"tool","tool_call_id":"call_2","content":"9"}]""";
        const string Param = "messages[1].tool_calls[1].function.arguments";
        foreach (var path in new[] { ChatPath, "/apply-template" })
        {
            var (status, error, _) = await PostAsync(_client, path, $$$"""{"messages":{{{History}}},"tools":{{{Tools}}},"max_tokens":4}""");

            Assert.Equal(HttpStatusCode.BadRequest, status);
            AssertOpenAiError(error, "invalid_request_error", Param);
            var message = error.GetProperty("error").GetProperty("message").GetString();
            Assert.StartsWith(Param + ": ", message, StringComparison.Ordinal);
            Assert.DoesNotContain("LineNumber", message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_template_renders_the_tools_and_a_required_call_comes_back_parsed()
    {
        var body = $$$"""{"messages":[{"role":"user","content":"Add 2 and 3."}],"tools":{{{Tools}}},"tool_choice":"required","parallel_tool_calls":false,"max_tokens":120,"temperature":0}""";
        var (_, rendered, _) = await PostAsync(_client, "/apply-template", body);
        var prompt = rendered.GetProperty("prompt").GetString()!;
        Assert.Contains("<tools>", prompt, StringComparison.Ordinal);
        Assert.DoesNotContain("Respond in JSON format", prompt, StringComparison.Ordinal);

        var (status, json, _) = await PostAsync(_client, ChatPath, body);

        Assert.Equal(HttpStatusCode.OK, status);
        ToolCallingTests.AssertSingleAddCall(json);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").ValueKind);
    }

    [Fact]
    public async Task An_answer_cut_at_any_max_tokens_has_no_call_markup_in_its_content()
    {
        // Greedy: the answer cut at k tokens is the first k tokens of the long one, so every cut point is tried.
        const string Request = $$$"""{"messages":[{"role":"user","content":"Weather in Oslo?"}],"tools":{{{ToolCallingTests.ToolsJson}}},"tool_choice":"required","temperature":0""";
        var (_, full, _) = await PostAsync(_client, ChatPath, Request + ""","max_tokens":60}""");
        var tokens = full.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.True(tokens > 10, full.ToString());

        for (var maxTokens = 1; maxTokens <= tokens; maxTokens++)
        {
            var body = Request + $$""","max_tokens":{{maxTokens}}}""";
            var (status, json, _) = await PostAsync(_client, ChatPath, body);
            Assert.Equal(HttpStatusCode.OK, status);
            var message = json.GetProperty("choices")[0].GetProperty("message");
            Assert.True(message.GetProperty("content").ValueKind == JsonValueKind.Null || message.GetProperty("content").GetString() == "", $"max_tokens {maxTokens}: {json}");

            using var stream = await PostStreamAsync(_client, ChatPath, body[..^1] + ""","stream":true}""");
            var transcript = await ReadAllEventsAsync(stream);
            var content = string.Concat(transcript.Chunks
                .Select(c => c.GetProperty("choices")).Where(c => c.GetArrayLength() > 0)
                .Select(c => c[0].GetProperty("delta")).Where(d => d.TryGetProperty("content", out var t) && t.ValueKind == JsonValueKind.String)
                .Select(d => d.GetProperty("content").GetString()));
            Assert.True(content.Length == 0, $"max_tokens {maxTokens} streamed: {content}");
        }
    }
}
