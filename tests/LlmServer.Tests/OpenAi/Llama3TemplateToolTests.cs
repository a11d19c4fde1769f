using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmServer.Testing;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>Llama 3.1's template: it renders tools and one call per message natively, and refuses parallel calls.</summary>
public sealed class Llama31ToolServerFixture() : TemplateToolServerFixture("meta-llama-Llama-3.1-8B-Instruct.jinja");

/// <summary>Llama 3.3's template: as 3.1's.</summary>
public sealed class Llama33ToolServerFixture() : TemplateToolServerFixture("meta-llama-Llama-3.3-70B-Instruct.jinja");

public sealed class Llama31TemplateToolTests(Llama31ToolServerFixture fixture)
    : Llama3TemplateToolTests(fixture, "meta-llama-Llama-3.1-8B-Instruct"), IClassFixture<Llama31ToolServerFixture>;

public sealed class Llama33TemplateToolTests(Llama33ToolServerFixture fixture)
    : Llama3TemplateToolTests(fixture, "meta-llama-Llama-3.3-70B-Instruct"), IClassFixture<Llama33ToolServerFixture>;

/// <summary>The same checks for each Llama 3.x template.</summary>
public abstract class Llama3TemplateToolTests(TemplateToolServerFixture fixture, string template)
{
    [Fact]
    public Task Props_show_the_llama3_format_and_its_capabilities() => Llama3TemplateTools.AssertPropsAsync(fixture.Server.Client);

    [Theory]
    [InlineData("tools-offered")]
    [InlineData("tool-round-trip")]
    public Task Renders_the_tool_cases_as_llama_cpp_does(string caseName) =>
        Llama3TemplateTools.AssertRendersAsync(fixture.Server.Client, template, caseName);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public Task A_required_call_in_llama3_syntax_comes_back_parsed_one_call_a_turn(bool parallelToolCalls) =>
        Llama3TemplateTools.AssertRequiredCallAsync(fixture.Server.Client, parallelToolCalls);

    [Fact]
    public Task A_history_with_two_calls_in_one_message_renders_them_one_per_message() =>
        Llama3TemplateTools.AssertParallelHistoryAsync(fixture.Server.Client);

    [Fact]
    public async Task History_arguments_that_are_not_json_are_named_where_the_request_has_them()
    {
        // The template renders the two calls as two messages; the refusal names the second call of message 1 all the same.
        const string History = """[{"role":"user","content":"Add 2 and 3, and 4 and 5."},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"add","arguments":"{\"a\":2,\"b\":3}"}},{"id":"call_2","type":"function","function":{"name":"add","arguments":"{a: 4"}}]},{"role":"tool","tool_call_id":"call_1","content":"5"},{"role":"tool","tool_call_id":"call_2","content":"9"}]""";
        var (status, error, _) = await PostAsync(fixture.Server.Client, ChatPath, $$$"""{"messages":{{{History}}},"tools":{{{ToolCallingTests.AddToolJson}}},"max_tokens":4}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(error, "invalid_request_error", "messages[1].tool_calls[1].function.arguments");
    }
}

internal static class Llama3TemplateTools
{
    public static async Task AssertPropsAsync(HttpClient client)
    {
        var props = JsonDocument.Parse(await client.GetStringAsync(new Uri("/props", UriKind.Relative))).RootElement;
        Assert.Equal("llama3", props.GetProperty("tool_call_format").GetString());
        Assert.Equal("llama3", props.GetProperty("template_tool_call_format").GetString());
        var caps = props.GetProperty("chat_template_caps");
        Assert.True(caps.GetProperty("supports_tools").GetBoolean());
        Assert.True(caps.GetProperty("supports_tool_calls").GetBoolean());
        Assert.False(caps.GetProperty("supports_parallel_tool_calls").GetBoolean());
    }

    public static async Task AssertRendersAsync(HttpClient client, string template, string caseName)
    {
        var body = JsonNode.Parse(ChatTemplateFixtures.CaseJson(caseName))!.AsObject();
        body["add_generation_prompt"] = true;
        var before = DateTime.UtcNow;
        var (status, rendered, _) = await PostAsync(client, "/apply-template", body.ToJsonString());
        var after = DateTime.UtcNow;

        // The server's clock is real; the fixtures print the day they were rendered (01 Dec 2026), so today's date
        // takes its place (either side of a midnight the request crossed).
        Assert.Equal(HttpStatusCode.OK, status);
        var expected = ChatTemplateFixtures.ExpectedPrompt(template, caseName)!;
        var prompt = rendered.GetProperty("prompt").GetString();
        Assert.Contains(prompt, new[] { before, after }.Select(d => expected.Replace("01 Dec 2026", d.ToString("dd MMM yyyy", CultureInfo.InvariantCulture), StringComparison.Ordinal)));
    }

    /// <summary>
    /// The template raises on two calls in one message (llama.cpp refuses the case); a history from a model that made
    /// them (another provider's, replayed) renders as one assistant message a call, and a chat request is answered.
    /// </summary>
    public static async Task AssertParallelHistoryAsync(HttpClient client)
    {
        var body = JsonNode.Parse(ChatTemplateFixtures.CaseJson("parallel-calls"))!.AsObject();
        body["add_generation_prompt"] = true;
        var (status, rendered, _) = await PostAsync(client, "/apply-template", body.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, status);
        var prompt = rendered.GetProperty("prompt").GetString()!;
        var add = prompt.IndexOf("\"name\": \"add\"", StringComparison.Ordinal);
        var weather = prompt.IndexOf("\"name\": \"get_weather\"", add + 1, StringComparison.Ordinal);
        Assert.True(add >= 0 && weather > add, prompt);
        Assert.Contains("<|start_header_id|>assistant<|end_header_id|>", prompt[add..weather], StringComparison.Ordinal);

        body.Remove("add_generation_prompt");
        body["max_tokens"] = 4;
        var (chatStatus, chatJson, _) = await PostAsync(client, ChatPath, body.ToJsonString());
        Assert.True(chatStatus == HttpStatusCode.OK, chatJson.ToString());
    }

    /// <summary>
    /// A required call in Llama 3's syntax comes back parsed: one call a turn, as the template takes one call a
    /// message, whatever the request's parallel_tool_calls says.
    /// </summary>
    public static async Task AssertRequiredCallAsync(HttpClient client, bool parallelToolCalls)
    {
        var body = $$$"""{"messages":[{"role":"user","content":"Add 2 and 3."}],"tools":{{{ToolCallingTests.AddToolJson}}},"tool_choice":"required","parallel_tool_calls":{{{(parallelToolCalls ? "true" : "false")}}},"max_tokens":200,"temperature":0}""";
        var (status, json, _) = await PostAsync(client, ChatPath, body);

        Assert.Equal(HttpStatusCode.OK, status);
        ToolCallingTests.AssertSingleAddCall(json);
    }
}
