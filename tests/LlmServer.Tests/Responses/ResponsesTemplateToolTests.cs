using System.Net;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.OpenAi;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Responses;

/// <summary>
/// Function tools on <c>/v1/responses</c> through a template that renders them itself (Qwen 2.5's, the Hermes
/// syntax): the prompt is the one the chat API renders for the same conversation, and the model's call, in the
/// template's syntax, comes back as a <c>function_call</c> item. The calls are required or named (a tiny model never
/// calls on its own); the grammar makes them valid.
/// </summary>
public sealed class ResponsesTemplateToolTests(HermesToolServerFixture fixture) : IClassFixture<HermesToolServerFixture>
{
    private const string Tools = $$"""[{"type":"function","name":"add","description":"Add two digits.","parameters":{{ToolCallingTests.AddSchema}}}]""";

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task A_required_call_is_a_function_call_item_and_its_output_renders_as_the_chat_tool_message()
    {
        var (prompt, tokens) = await ChatPrompt.RenderAsync(_client, $$"""{"messages":[{"role":"user","content":"Add 2 and 3."}],"tools":{{ToolCallingTests.AddToolJson}},"tool_choice":"required"}""");
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"add\"", prompt, StringComparison.Ordinal);

        var (status, first, _) = await PostAsync(_client, "/v1/responses", $$"""
            {"input":"Add 2 and 3.","tools":{{Tools}},"tool_choice":"required","parallel_tool_calls":false,"max_output_tokens":120,"temperature":0}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("completed", first.GetProperty("status").GetString());
        Assert.Equal(tokens, first.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        var item = Assert.Single(first.GetProperty("output").EnumerateArray());
        var (callId, arguments) = AssertAddCall(item);
        Assert.Equal(string.Empty, first.GetProperty("output_text").GetString());

        // The call's output alone continues the stored response: the prompt is the chat API's for the whole
        // conversation, and its prefix comes from the warm KV cache.
        var (followUp, followUpTokens) = await ChatPrompt.RenderAsync(_client, $$$"""
            {"messages":[{"role":"user","content":"Add 2 and 3."},{{{ChatPrompt.CallAndResult(callId, "add", arguments, "5")[1..^1]}}}],"tools":{{{ToolCallingTests.AddToolJson}}},"tool_choice":"required"}
            """);
        Assert.Contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\", \"arguments\": {", followUp, StringComparison.Ordinal);
        Assert.EndsWith("<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n<|im_start|>assistant\n", followUp, StringComparison.Ordinal);

        var firstId = first.GetProperty("id").GetString();
        var (unanswered, refusal, _) = await PostAsync(_client, "/v1/responses", $$"""{"previous_response_id":"{{firstId}}","input":"And now?","max_output_tokens":2}""");
        Assert.Equal(HttpStatusCode.BadRequest, unanswered);
        AssertOpenAiError(refusal, "invalid_request_error", "input");
        Assert.Contains(callId, refusal.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        var (continued, second, _) = await PostAsync(_client, "/v1/responses", $$"""
            {"previous_response_id":"{{firstId}}","input":[{"type":"function_call_output","call_id":"{{callId}}","output":"5"}],
             "tools":{{Tools}},"tool_choice":"required","parallel_tool_calls":false,"max_output_tokens":120,"temperature":0}
            """);

        Assert.Equal(HttpStatusCode.OK, continued);
        var usage = second.GetProperty("usage");
        Assert.Equal(followUpTokens, usage.GetProperty("input_tokens").GetInt32());
        Assert.True(usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32() >= tokens, usage.ToString());
        var (nextCallId, _) = AssertAddCall(Assert.Single(second.GetProperty("output").EnumerateArray()));
        Assert.NotEqual(callId, nextCallId);
    }

    [Fact]
    public async Task A_streamed_named_call_comes_as_function_call_events()
    {
        using var response = await PostStreamAsync(_client, "/v1/responses", $$"""
            {"input":"Add 2 and 3.","tools":{{Tools}},"tool_choice":{"type":"function","name":"add"},"parallel_tool_calls":false,"max_output_tokens":120,"temperature":0,"stream":true}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await NamedSse.ReadAllAsync(response);

        var names = events.Select(e => e.Name).ToList();
        Assert.Equal(["response.created", "response.in_progress", "response.output_item.added"], names[..3]);
        Assert.Equal(["response.function_call_arguments.done", "response.output_item.done", "response.completed"], names[^3..]);
        Assert.All(names[3..^3], name => Assert.Equal("response.function_call_arguments.delta", name));
        var added = events[2].Data.GetProperty("item");
        Assert.Equal("function_call", added.GetProperty("type").GetString());
        Assert.Equal("add", added.GetProperty("name").GetString());
        var arguments = string.Concat(events[3..^3].Select(e => e.Data.GetProperty("delta").GetString()));
        ToolCallingTests.AssertMatchesSchema("add", arguments);

        var final = events[^1].Data.GetProperty("response");
        var (callId, finalArguments) = AssertAddCall(Assert.Single(final.GetProperty("output").EnumerateArray()));
        Assert.Equal(added.GetProperty("call_id").GetString(), callId);
        Assert.Equal(arguments, finalArguments);
    }

    /// <summary>A completed <c>add</c> call item, in OpenAI's id spellings; returns its call id and arguments.</summary>
    private static (string CallId, string Arguments) AssertAddCall(JsonElement item)
    {
        Assert.Equal("type", item.EnumerateObject().First().Name);
        Assert.Equal("function_call", item.GetProperty("type").GetString());
        Assert.Equal("completed", item.GetProperty("status").GetString());
        Assert.StartsWith("fc_", item.GetProperty("id").GetString(), StringComparison.Ordinal);
        var callId = item.GetProperty("call_id").GetString()!;
        Assert.Matches("^call_[A-Za-z0-9]{24}$", callId);
        Assert.Equal("add", item.GetProperty("name").GetString());
        var arguments = item.GetProperty("arguments").GetString()!;
        ToolCallingTests.AssertMatchesSchema("add", arguments);
        return (callId, arguments);
    }
}
