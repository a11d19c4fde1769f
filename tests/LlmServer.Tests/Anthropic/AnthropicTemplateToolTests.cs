using System.Net;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.OpenAi;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Anthropic;

/// <summary>
/// Tools on <c>/v1/messages</c> through a template that renders them itself (Qwen 2.5's, the Hermes syntax): the
/// prompt is the one the chat API renders for the same conversation, and the model's call, in the template's syntax,
/// comes back as a <c>tool_use</c> block. The calls are forced (a tiny model never calls on its own); the grammar
/// makes them valid.
/// </summary>
public sealed class AnthropicTemplateToolTests(HermesToolServerFixture fixture) : IClassFixture<HermesToolServerFixture>
{
    private const string Path = "/v1/messages";

    internal const string Tools = $$"""[{"name":"add","description":"Add two digits.","input_schema":{{ToolCallingTests.AddSchema}}}]""";

    private const string Question = """{"role":"user","content":"Add 2 and 3."}""";

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task A_forced_call_is_a_tool_use_block_and_its_result_renders_as_the_chat_tool_message()
    {
        var (prompt, tokens) = await ChatPrompt.RenderAsync(_client, $$"""{"messages":[{{Question}}],"tools":{{ToolCallingTests.AddToolJson}},"tool_choice":"required"}""");
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"add\"", prompt, StringComparison.Ordinal);
        var (_, counted, _) = await PostAsync(_client, "/v1/messages/count_tokens", $$$"""{"messages":[{{{Question}}}],"tools":{{{Tools}}},"tool_choice":{"type":"any"}}""");
        Assert.Equal(tokens, counted.GetProperty("input_tokens").GetInt32());

        var (status, call, _) = await PostAsync(_client, Path, $$"""
            {"max_tokens":120,"temperature":0,"tools":{{Tools}},"tool_choice":{"type":"any","disable_parallel_tool_use":true},"messages":[{{Question}}]}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("tool_use", call.GetProperty("stop_reason").GetString());
        var usage = call.GetProperty("usage");
        Assert.Equal(tokens, usage.GetProperty("input_tokens").GetInt32() + usage.GetProperty("cache_read_input_tokens").GetInt32());
        var block = Assert.Single(call.GetProperty("content").EnumerateArray());
        var id = AssertAddToolUse(block);
        var input = block.GetProperty("input").GetRawText();

        // The result goes back under the block's id: the prompt is the chat API's with the matching tool_call_id.
        var messages = $$"""
            [{{Question}},
             {"role":"assistant","content":[{"type":"tool_use","id":"{{id}}","name":"add","input":{{input}}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"{{id}}","content":"5"}]}]
            """;
        var (followUp, followUpTokens) = await ChatPrompt.RenderAsync(_client, $$$"""
            {"messages":[{{{Question}}},{{{ChatPrompt.CallAndResult("call_" + id["toolu_".Length..], "add", input, "5")[1..^1]}}}],"tools":{{{ToolCallingTests.AddToolJson}}}}
            """);
        Assert.Contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"add\", \"arguments\": {", followUp, StringComparison.Ordinal);
        Assert.EndsWith("<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n<|im_start|>assistant\n", followUp, StringComparison.Ordinal);
        var (_, followUpCount, _) = await PostAsync(_client, "/v1/messages/count_tokens", $$"""{"messages":{{messages}},"tools":{{Tools}}}""");
        Assert.Equal(followUpTokens, followUpCount.GetProperty("input_tokens").GetInt32());

        // And the model answers it; forced again, with another call.
        var (answered, next, _) = await PostAsync(_client, Path, $$"""
            {"max_tokens":120,"temperature":0,"tools":{{Tools}},"tool_choice":{"type":"tool","name":"add","disable_parallel_tool_use":true},"messages":{{messages}}}
            """);
        Assert.Equal(HttpStatusCode.OK, answered);
        Assert.Equal("tool_use", next.GetProperty("stop_reason").GetString());
        Assert.NotEqual(id, AssertAddToolUse(Assert.Single(next.GetProperty("content").EnumerateArray())));
        usage = next.GetProperty("usage");
        Assert.Equal(followUpTokens, usage.GetProperty("input_tokens").GetInt32() + usage.GetProperty("cache_read_input_tokens").GetInt32());
    }

    [Fact]
    public async Task A_streamed_named_call_is_a_tool_use_block_with_stop_reason_tool_use()
    {
        using var response = await PostStreamAsync(_client, Path, $$"""
            {"max_tokens":120,"temperature":0,"stream":true,"tools":{{Tools}},"tool_choice":{"type":"tool","name":"add","disable_parallel_tool_use":true},"messages":[{{Question}}]}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await NamedSse.ReadAllAsync(response);

        var names = events.Where(e => e.Name != "ping").Select(e => e.Name).ToList();
        Assert.Equal(["message_start", "content_block_start"], names[..2]);
        Assert.Equal(["content_block_stop", "message_delta", "message_stop"], names[^3..]);
        Assert.All(names[2..^3], name => Assert.Equal("content_block_delta", name));
        var block = events.Single(e => e.Name == "content_block_start").Data.GetProperty("content_block");
        Assert.Equal("tool_use", block.GetProperty("type").GetString());
        Assert.Matches("^toolu_[A-Za-z0-9]{24}$", block.GetProperty("id").GetString());
        Assert.Equal("add", block.GetProperty("name").GetString());
        var input = string.Concat(events.Where(e => e.Name == "content_block_delta").Select(e => e.Data.GetProperty("delta").GetProperty("partial_json").GetString()));
        ToolCallingTests.AssertMatchesSchema("add", input);
        Assert.Equal("tool_use", events.Single(e => e.Name == "message_delta").Data.GetProperty("delta").GetProperty("stop_reason").GetString());
    }

    /// <summary>A <c>tool_use</c> block calling <c>add</c> with valid input, in Anthropic's id spelling; returns its id.</summary>
    private static string AssertAddToolUse(JsonElement block)
    {
        Assert.Equal("type", block.EnumerateObject().First().Name);
        Assert.Equal("tool_use", block.GetProperty("type").GetString());
        var id = block.GetProperty("id").GetString()!;
        Assert.Matches("^toolu_[A-Za-z0-9]{24}$", id);
        Assert.Equal("add", block.GetProperty("name").GetString());
        ToolCallingTests.AssertMatchesSchema("add", block.GetProperty("input").GetRawText());
        return id;
    }
}

/// <summary>
/// <c>/v1/messages</c> through Mistral's template, whose call ids are nine alphanumerics: the <c>toolu_</c> id of a
/// call comes back as that short id, so the template renders the round trip instead of refusing it.
/// </summary>
public sealed class AnthropicShortToolIdTests(MistralToolServerFixture fixture) : IClassFixture<MistralToolServerFixture>
{
    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task A_short_call_id_goes_out_as_toolu_and_renders_back_as_the_short_id()
    {
        var (status, call, _) = await PostAsync(_client, "/v1/messages", $$"""
            {"max_tokens":120,"temperature":0,"tools":{{AnthropicTemplateToolTests.Tools}},"tool_choice":{"type":"tool","name":"add","disable_parallel_tool_use":true},
             "messages":[{"role":"user","content":"Add 2 and 3."}]}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var block = Assert.Single(call.GetProperty("content").EnumerateArray());
        var id = block.GetProperty("id").GetString()!;
        Assert.Matches("^toolu_[A-Za-z0-9]{9}$", id);
        var shortId = id["toolu_".Length..];
        var input = block.GetProperty("input").GetRawText();

        var (counted, count, _) = await PostAsync(_client, "/v1/messages/count_tokens", $$"""
            {"tools":{{AnthropicTemplateToolTests.Tools}},"messages":[{"role":"user","content":"Add 2 and 3."},
             {"role":"assistant","content":[{"type":"tool_use","id":"{{id}}","name":"add","input":{{input}}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"{{id}}","content":"5"}]}]}
            """);
        Assert.Equal(HttpStatusCode.OK, counted);
        var (prompt, tokens) = await ChatPrompt.RenderAsync(_client, $$$"""
            {"messages":[{"role":"user","content":"Add 2 and 3."},{{{ChatPrompt.CallAndResult(shortId, "add", input, "5")[1..^1]}}}],"tools":{{{ToolCallingTests.AddToolJson}}}}
            """);

        Assert.Contains($"[CALL_ID]{shortId}[ARGS]", prompt, StringComparison.Ordinal);
        Assert.Contains($"[TOOL_RESULTS]{shortId}[TOOL_CONTENT]5[/TOOL_RESULTS]", prompt, StringComparison.Ordinal);
        Assert.Equal(tokens, count.GetProperty("input_tokens").GetInt32());
    }
}
