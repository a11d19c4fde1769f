using System.Net;
using System.Text.Json;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>DeepSeek-R1's distill template: its generation prompt opens a <c>&lt;think&gt;</c> block.</summary>
public sealed class DeepSeekR1ServerFixture() : TemplateToolServerFixture("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja");

/// <summary>
/// Reasoning parted from the answer on the wire, as llama-server does. The tiny model writes what a schema's constant
/// forces (its JSON text, quotes included): the prompt ends inside the block, so the output is reasoning up to the
/// closing tag and answer after it.
/// </summary>
public sealed class ReasoningTests(DeepSeekR1ServerFixture fixture) : IClassFixture<DeepSeekR1ServerFixture>
{
    private const string Forced = "\"Plan</think>Done\"";

    private readonly HttpClient _client = fixture.Server.Client;

    private static string Body(string extra = "") =>
        """{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":60,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"const":"Plan</think>Done"}}}""" + extra + "}";

    [Fact]
    public async Task The_answer_carries_its_reasoning_apart()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Body());

        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal("\"Plan", message.GetProperty("reasoning_content").GetString());
        Assert.Equal("Done\"", message.GetProperty("content").GetString());

        // Reasoning tokens are completion tokens; the details say how many.
        var usage = json.GetProperty("usage");
        var reasoningTokens = usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32();
        Assert.InRange(reasoningTokens, 1, usage.GetProperty("completion_tokens").GetInt32() - 1);
    }

    [Fact]
    public async Task A_stream_sends_reasoning_as_delta_reasoning_content_before_the_content()
    {
        using var response = await PostStreamAsync(_client, ChatPath, Body(""","stream":true,"stream_options":{"include_usage":true}"""));
        var chunks = (await ReadAllEventsAsync(response)).Chunks;

        var deltas = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("delta")).ToList();
        var reasoning = deltas.Select(d => d.TryGetProperty("reasoning_content", out var r) ? r.GetString() : null).ToList();
        var content = deltas.Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : null).ToList();
        Assert.Equal("\"Plan", string.Concat(reasoning));
        Assert.Equal("Done\"", string.Concat(content));
        Assert.True(reasoning.FindLastIndex(r => r is not null) < content.FindIndex(c => !string.IsNullOrEmpty(c)), "reasoning came after content");
        Assert.DoesNotContain(deltas, d => d.TryGetProperty("reasoning_content", out _) && d.TryGetProperty("content", out _));

        var usage = chunks[^1].GetProperty("usage");
        Assert.InRange(usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32(), 1, usage.GetProperty("completion_tokens").GetInt32() - 1);
    }

    [Fact]
    public async Task An_answer_cut_before_the_closing_tag_is_all_reasoning()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Body().Replace("\"max_tokens\":60", "\"max_tokens\":2", StringComparison.Ordinal));

        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.StartsWith("\"", message.GetProperty("reasoning_content").GetString(), StringComparison.Ordinal);
        Assert.Equal(string.Empty, message.GetProperty("content").GetString());
        Assert.Equal(2, json.GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task Reasoning_format_none_keeps_the_raw_text_in_content()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Body(""","reasoning_format":"none" """));

        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(Forced, message.GetProperty("content").GetString());
        Assert.False(message.TryGetProperty("reasoning_content", out _));
        Assert.False(json.GetProperty("usage").TryGetProperty("completion_tokens_details", out _));
    }

    [Fact]
    public async Task Reasoning_format_none_streams_the_raw_text_as_content()
    {
        using var response = await PostStreamAsync(_client, ChatPath, Body(""","stream":true,"reasoning_format":"none" """));
        var deltas = (await ReadAllEventsAsync(response)).Chunks.Select(c => c.GetProperty("choices")[0].GetProperty("delta")).ToList();

        Assert.Equal(Forced, string.Concat(deltas.Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : null)));
        Assert.DoesNotContain(deltas, d => d.TryGetProperty("reasoning_content", out _));
    }

    [Theory]
    [InlineData("\"deepseek-legacy\"")]
    [InlineData("\"Auto\"")]
    [InlineData("3")]
    public async Task An_unknown_reasoning_format_is_refused(string value)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Body($",\"reasoning_format\":{value}"));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", "reasoning_format");
    }

    [Fact]
    public async Task The_template_opens_the_block_in_the_prompt()
    {
        var (status, json, _) = await PostAsync(_client, "/apply-template", """{"messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.EndsWith("<think>\n", json.GetProperty("prompt").GetString(), StringComparison.Ordinal);
    }
}

/// <summary>Qwen3's template: the model opens the block itself; <c>enable_thinking</c> false closes an empty one in the prompt.</summary>
public sealed class Qwen3ServerFixture() : TemplateToolServerFixture("Qwen-Qwen3-0.6B.jinja");

public sealed class Qwen3ReasoningTests(Qwen3ServerFixture fixture) : IClassFixture<Qwen3ServerFixture>
{
    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task An_answer_without_a_block_is_content_unchanged()
    {
        var body = """{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":30,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"const":"plain <think> text"}}}}""";
        var (status, json, _) = await PostAsync(_client, ChatPath, body);

        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("\"plain <think> text\"", message.GetProperty("content").GetString());
        Assert.False(message.TryGetProperty("reasoning_content", out _));
        Assert.False(json.GetProperty("usage").TryGetProperty("completion_tokens_details", out _));
    }

    [Fact]
    public async Task Enable_thinking_false_closes_the_block_in_the_prompt()
    {
        const string Messages = "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]";
        var (_, thinking, _) = await PostAsync(_client, "/apply-template", "{" + Messages + "}");
        var (status, notThinking, _) = await PostAsync(_client, "/apply-template", "{" + Messages + ""","chat_template_kwargs":{"enable_thinking":false}}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.EndsWith("<|im_start|>assistant\n", thinking.GetProperty("prompt").GetString(), StringComparison.Ordinal);
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n", notThinking.GetProperty("prompt").GetString(), StringComparison.Ordinal);

        var (chatStatus, chat, _) = await PostAsync(_client, ChatPath, "{" + Messages + ""","max_tokens":3,"chat_template_kwargs":{"enable_thinking":false}}""");
        Assert.Equal(HttpStatusCode.OK, chatStatus);
        Assert.False(chat.GetProperty("choices")[0].GetProperty("message").TryGetProperty("reasoning_content", out _));
    }

    [Theory]
    [InlineData("\"yes\"", "chat_template_kwargs")]
    [InlineData("{\"enable_thinking\":\"no\"}", "chat_template_kwargs.enable_thinking")]
    public async Task Chat_template_kwargs_of_the_wrong_type_are_refused(string value, string param)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, """{"messages":[{"role":"user","content":"Hi"}],"chat_template_kwargs":""" + value + "}");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", param);
    }
}
