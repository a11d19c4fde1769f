using System.Net;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>
/// Mistral Small 3.2's template renders each call as <c>[TOOL_CALLS]name[CALL_ID]id[ARGS]...</c>, and the model
/// writes the id itself (the grammar lets it). Every front end reports the id the model wrote, streamed or not, so
/// the client's echo of it renders the next prompt as the model generated it: the next request's cached prefix
/// covers the call through its id. A different id (what a server making its own ids would report) loses it there.
/// The prefix can only match where the tokens the model generated are the ones the prompt tokenizes into: the
/// tool is named <c>ADD</c>, which stories260K's vocabulary spells one way only (it has <c>ad</c>, so a call of
/// <c>add</c> may be generated as <c>a</c>, <c>dd</c> and depart from the prompt before the id).
/// </summary>
public sealed class MistralModelToolIdTests(MistralToolServerFixture fixture) : IClassFixture<MistralToolServerFixture>
{
    private const string Tool = "ADD";
    private const string Question = """{"role":"user","content":"Add 2 and 3."}""";
    private const string ChatTools = "[{\"type\":\"function\",\"function\":{\"name\":\"" + Tool + "\",\"description\":\"Add two digits.\",\"parameters\":" + ToolCallingTests.AddSchema + "}}]";
    private const string ChatToolChoice = "{\"type\":\"function\",\"function\":{\"name\":\"" + Tool + "\"}}";
    private const string ResponsesTools = $$"""[{"type":"function","name":"{{Tool}}","description":"Add two digits.","parameters":{{ToolCallingTests.AddSchema}}}]""";
    private const string AnthropicTools = $$"""[{"name":"{{Tool}}","description":"Add two digits.","input_schema":{{ToolCallingTests.AddSchema}}}]""";

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task Chat_completions_report_the_models_id_and_its_echo_keeps_the_kv_warm_past_the_call()
    {
        var (status, answer, _) = await PostAsync(_client, ChatPath, FirstChatBody(stream: false));
        Assert.True(status == HttpStatusCode.OK, answer.ToString());
        var call = answer.GetProperty("choices")[0].GetProperty("message").GetProperty("tool_calls")[0];
        var id = call.GetProperty("id").GetString()!;
        var arguments = call.GetProperty("function").GetProperty("arguments").GetString()!;

        var throughId = await TokensThroughIdAsync(id, arguments);
        Assert.True(await ChatFollowUpCachedAsync(id, arguments) >= throughId, $"The echo of '{id}' should reuse at least {throughId} tokens.");

        // Any other id renders another prompt from the id on.
        var other = new string(id.Reverse().ToArray()) == id ? "zZ9zZ9zZ9" : new string(id.Reverse().ToArray());
        var otherCached = await ChatFollowUpCachedAsync(other, arguments);
        Assert.True(otherCached < throughId, $"Another id ('{other}') renders another prompt from the id on, yet {otherCached} tokens were reused (through the id: {throughId}).");
    }

    [Fact]
    public async Task A_streamed_call_reports_the_models_id_on_its_first_chunk()
    {
        using var response = await PostStreamAsync(_client, ChatPath, FirstChatBody(stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var transcript = await ReadAllEventsAsync(response);
        var calls = transcript.Items
            .Where(i => !i.IsComment && i.Data != "[DONE]")
            .Select(i => JsonDocument.Parse(i.Data).RootElement.GetProperty("choices"))
            .Where(c => c.GetArrayLength() > 0 && c[0].GetProperty("delta").TryGetProperty("tool_calls", out _))
            .Select(c => c[0].GetProperty("delta").GetProperty("tool_calls")[0])
            .ToList();
        var id = calls[0].GetProperty("id").GetString()!;
        Assert.Matches("^[A-Za-z0-9]{9}$", id);
        var arguments = string.Concat(calls.Select(c => c.GetProperty("function").GetProperty("arguments").GetString()));

        var throughId = await TokensThroughIdAsync(id, arguments);
        Assert.True(await ChatFollowUpCachedAsync(id, arguments) >= throughId, $"The echo of '{id}' should reuse at least {throughId} tokens.");
    }

    [Fact]
    public async Task Responses_report_the_models_id_as_call_id_and_its_output_keeps_the_kv_warm()
    {
        var (status, first, _) = await PostAsync(_client, "/v1/responses", $$"""
            {"input":[{{Question}}],"tools":{{ResponsesTools}},"tool_choice":{"type":"function","name":"{{Tool}}"},"parallel_tool_calls":false,"max_output_tokens":120,"temperature":0,"store":false}
            """);
        Assert.True(status == HttpStatusCode.OK, first.ToString());
        var item = Assert.Single(first.GetProperty("output").EnumerateArray());
        var id = item.GetProperty("call_id").GetString()!;
        var arguments = item.GetProperty("arguments").GetString()!;
        var throughId = await TokensThroughIdAsync(id, arguments);

        var (continued, second, _) = await PostAsync(_client, "/v1/responses", $$"""
            {"input":[{{Question}},{"type":"function_call","call_id":"{{id}}","name":"{{Tool}}","arguments":{{JsonSerializer.Serialize(arguments)}}},{"type":"function_call_output","call_id":"{{id}}","output":"5"}],
             "tools":{{ResponsesTools}},"tool_choice":{"type":"function","name":"{{Tool}}"},"parallel_tool_calls":false,"max_output_tokens":1,"temperature":0,"store":false}
            """);
        Assert.True(continued == HttpStatusCode.OK, second.ToString());
        var cached = second.GetProperty("usage").GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32();
        Assert.True(cached >= throughId, $"The echo of '{id}' should reuse at least {throughId} tokens, not {cached}.");
    }

    [Fact]
    public async Task Messages_report_the_models_id_as_toolu_and_its_result_keeps_the_kv_warm()
    {
        var (status, call, _) = await PostAsync(_client, "/v1/messages", $$"""
            {"max_tokens":120,"temperature":0,"tools":{{AnthropicTools}},"tool_choice":{"type":"tool","name":"{{Tool}}","disable_parallel_tool_use":true},"messages":[{{Question}}]}
            """);
        Assert.True(status == HttpStatusCode.OK, call.ToString());
        var block = Assert.Single(call.GetProperty("content").EnumerateArray());
        var wireId = block.GetProperty("id").GetString()!;
        Assert.Matches("^toolu_[A-Za-z0-9]{9}$", wireId);
        var input = block.GetProperty("input").GetRawText();
        var throughId = await TokensThroughIdAsync(wireId["toolu_".Length..], input);

        var (answered, next, _) = await PostAsync(_client, "/v1/messages", $$"""
            {"max_tokens":1,"temperature":0,"tools":{{AnthropicTools}},"tool_choice":{"type":"tool","name":"{{Tool}}","disable_parallel_tool_use":true},
             "messages":[{{Question}},
              {"role":"assistant","content":[{"type":"tool_use","id":"{{wireId}}","name":"{{Tool}}","input":{{input}}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"{{wireId}}","content":"5"}]}]}
            """);
        Assert.True(answered == HttpStatusCode.OK, next.ToString());
        var cached = next.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32();
        Assert.True(cached >= throughId, $"The echo of '{wireId}' should reuse at least {throughId} tokens, not {cached}.");
    }

    private static string FirstChatBody(bool stream) => $$"""
        {"messages":[{{Question}}],"tools":{{ChatTools}},"tool_choice":{{ChatToolChoice}},"parallel_tool_calls":false,"max_tokens":120,"temperature":0,"stream":{{(stream ? "true" : "false")}}}
        """;

    /// <summary>The follow-up's prompt tokens up to the end of the call's id, where a prompt made from another id departs.</summary>
    private async Task<int> TokensThroughIdAsync(string id, string arguments)
    {
        var (prompt, _) = await ChatPrompt.RenderAsync(_client, FollowUpChatBody(id, arguments));
        var marker = $"[CALL_ID]{id}[ARGS]";
        var at = prompt.IndexOf(marker, StringComparison.Ordinal);
        Assert.True(at > 0, prompt);
        var (_, tokens, _) = await PostAsync(_client, "/tokenize", JsonSerializer.Serialize(new { content = prompt[..(at + marker.Length - "[ARGS]".Length)], add_special = true, parse_special = true }));
        return tokens.GetProperty("tokens").GetArrayLength();
    }

    private async Task<int> ChatFollowUpCachedAsync(string id, string arguments)
    {
        var (status, answer, _) = await PostAsync(_client, ChatPath, FollowUpChatBody(id, arguments));
        Assert.True(status == HttpStatusCode.OK, answer.ToString());
        return answer.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
    }

    private static string FollowUpChatBody(string id, string arguments) => $$"""
        {"messages":[{{Question}},{{ChatPrompt.CallAndResult(id, Tool, arguments, "5")[1..^1]}}],"tools":{{ChatTools}},"tool_choice":{{ChatToolChoice}},"parallel_tool_calls":false,"max_tokens":1,"temperature":0}
        """;
}
