using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>DeepSeek-R1's distill template: its generation prompt opens a <c>&lt;think&gt;</c> block.</summary>
public sealed class DeepSeekR1ServerFixture() : TemplateToolServerFixture("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja");

/// <summary>The prompt ends inside the block: the model's free output is reasoning until it closes the block.</summary>
public sealed class OpenedBlockReasoningTests(DeepSeekR1ServerFixture fixture) : IClassFixture<DeepSeekR1ServerFixture>
{
    private const string Story = """{"messages":[{"role":"user","content":"Once upon a time"}],"temperature":0,"max_tokens":8""";

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task The_template_opens_the_block_in_the_prompt()
    {
        var (status, json, _) = await PostAsync(_client, "/apply-template", """{"messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.EndsWith("<think>\n", json.GetProperty("prompt").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_answer_cut_before_the_closing_tag_is_all_reasoning_streamed_or_not()
    {
        var (_, raw, _) = await PostAsync(_client, ChatPath, Story + ""","reasoning_format":"none"}""");
        var (status, json, _) = await PostAsync(_client, ChatPath, Story + "}");
        using var response = await PostStreamAsync(_client, ChatPath, Story + ""","stream":true,"stream_options":{"include_usage":true}}""");
        var chunks = (await ReadAllEventsAsync(response)).Chunks;

        // reasoning_format none: the model's text as it wrote it, in content.
        var rawMessage = raw.GetProperty("choices")[0].GetProperty("message");
        var text = rawMessage.GetProperty("content").GetString()!;
        Assert.False(rawMessage.TryGetProperty("reasoning_content", out _));
        Assert.False(raw.GetProperty("usage").TryGetProperty("completion_tokens_details", out _));
        Assert.NotEmpty(text.Trim());

        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(text.Trim(), choice.GetProperty("message").GetProperty("reasoning_content").GetString());
        Assert.Equal(string.Empty, choice.GetProperty("message").GetProperty("content").GetString());
        var usage = json.GetProperty("usage");
        Assert.Equal(8, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(8, usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());

        var deltas = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("delta")).ToList();
        Assert.Equal(text.Trim(), string.Concat(deltas.Select(d => d.TryGetProperty("reasoning_content", out var r) ? r.GetString() : null)));
        Assert.Equal(string.Empty, string.Concat(deltas.Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : null)));
        Assert.Equal(8, chunks[^1].GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task A_grammar_constrained_answer_is_content_though_the_prompt_opened_the_block()
    {
        var body = """{"messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":60,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"const":"Plan</think>Done"}}}}""";
        var (status, json, _) = await PostAsync(_client, ChatPath, body);

        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("\"Plan</think>Done\"", message.GetProperty("content").GetString());
        Assert.False(message.TryGetProperty("reasoning_content", out _));
    }

    [Theory]
    [InlineData("Let me see,", "thinking")]
    [InlineData("Done.</think>\\n\\nThe answer:", "text")]
    public async Task A_continued_message_inside_the_opened_block_goes_on_reasoning(string prefill, string type)
    {
        // The template opened the block before the prefill: the prefill decides whether the answer is still inside it.
        var body = "{\"max_tokens\":8,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"},{\"role\":\"assistant\",\"content\":\"" + prefill + "\"}]}";
        var (status, json, _) = await PostAsync(_client, "/v1/messages", body);

        Assert.Equal(HttpStatusCode.OK, status);
        var block = Assert.Single(json.GetProperty("content").EnumerateArray());
        Assert.Equal(type, block.GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("\"deepseek-legacy\"")]
    [InlineData("\"Auto\"")]
    [InlineData("3")]
    public async Task An_unknown_reasoning_format_is_refused(string value)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Story + ",\"reasoning_format\":" + value + "}");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", "reasoning_format");
    }
}

/// <summary>
/// Qwen3's template (the model opens the block itself; <c>enable_thinking</c> false closes an empty one in the
/// prompt), with <see cref="ScriptedOutput"/>: a <c>say:</c> message makes the tiny model write crafted output.
/// </summary>
public sealed class Qwen3ScriptedServerFixture : IAsyncLifetime
{
    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(
        extraArgs:
        [
            "--Scheduler:Slots=2",
            "--Scheduler:ContextSize=4096",
            "--Model:ChatTemplateFile=" + Path.Combine(LlmServer.Testing.ChatTemplateFixtures.Root, "templates", "Qwen-Qwen3-0.6B.jinja"),
        ],
        configureServices: ScriptedOutput.Install);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

public sealed class ReasoningTests(Qwen3ScriptedServerFixture fixture) : IClassFixture<Qwen3ScriptedServerFixture>
{
    /// <summary>Qwen3's shape: the block, blank lines, the answer.</summary>
    internal const string Thinking = "<think>\\nThe user greets me.\\n</think>\\n\\nHello there.";

    private readonly HttpClient _client = fixture.Server.Client;

    internal static string Say(string output, string extra = "", int maxTokens = 80) =>
        "{\"messages\":[{\"role\":\"user\",\"content\":\"" + ScriptedOutput.Prefix + output + "\"}],\"max_tokens\":" + maxTokens + extra + "}";

    [Fact]
    public async Task The_answer_carries_its_reasoning_apart()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Say(Thinking));

        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal("The user greets me.", message.GetProperty("reasoning_content").GetString());
        Assert.Equal("Hello there.", message.GetProperty("content").GetString());

        // Reasoning tokens are completion tokens; the details say how many.
        var usage = json.GetProperty("usage");
        Assert.InRange(usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32(), 1, usage.GetProperty("completion_tokens").GetInt32() - 1);
    }

    /// <summary>
    /// Scripted blocks (JSON-escaped): closed holding only whitespace, a normal one, each with and without an answer
    /// after it, and one never closed.
    /// </summary>
    public static TheoryData<string> Blocks => new()
    {
        "<think>\\n\\n</think>",
        "<think>\\n\\n</think>\\n\\nHi.",
        "<think>\\nHm.\\n</think>",
        "<think>\\nHm.\\n</think>\\n\\nHi.",
        "<think>\\nHm.",
    };

    /// <summary>
    /// How many of the model's tokens (every generated token, in order) are reasoning: the block's, both tags
    /// included, through the token that completes <c>&lt;/think&gt;</c>; all of them while it is open.
    /// </summary>
    internal static int ThroughClosingTag(IEnumerable<string> tokens)
    {
        var text = new System.Text.StringBuilder();
        var count = 0;
        foreach (var token in tokens)
        {
            count++;
            if (text.Append(token).ToString().Contains("</think>", StringComparison.Ordinal))
            {
                break;
            }
        }

        return count;
    }

    [Theory]
    [MemberData(nameof(Blocks))]
    public async Task Reasoning_tokens_are_the_block_with_its_tags_streamed_or_not(string output)
    {
        // Every generated token comes with its log-probability, so the tokens the model chose say what to expect.
        var (status, json, _) = await PostAsync(_client, ChatPath, Say(output, ""","logprobs":true"""));
        using var response = await PostStreamAsync(_client, ChatPath, Say(output, ""","logprobs":true,"stream":true,"stream_options":{"include_usage":true}"""));
        var chunks = (await ReadAllEventsAsync(response)).Chunks;

        Assert.Equal(HttpStatusCode.OK, status);
        var tokens = json.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content").EnumerateArray().Select(t => t.GetProperty("token").GetString()!).ToList();
        var usage = json.GetProperty("usage");
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), tokens.Count);
        Assert.Equal(ThroughClosingTag(tokens), usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());

        var streamed = chunks
            .Where(c => c.GetProperty("choices").GetArrayLength() > 0 && c.GetProperty("choices")[0].GetProperty("logprobs").ValueKind == JsonValueKind.Object)
            .SelectMany(c => c.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content").EnumerateArray())
            .Select(t => t.GetProperty("token").GetString()!)
            .ToList();
        var streamedUsage = chunks[^1].GetProperty("usage");
        Assert.Equal(streamedUsage.GetProperty("completion_tokens").GetInt32(), streamed.Count);
        Assert.Equal(ThroughClosingTag(streamed), streamedUsage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task A_stream_sends_reasoning_as_delta_reasoning_content_before_the_content()
    {
        using var response = await PostStreamAsync(_client, ChatPath, Say(Thinking, ""","stream":true,"stream_options":{"include_usage":true}"""));
        var chunks = (await ReadAllEventsAsync(response)).Chunks;

        var deltas = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("delta")).ToList();
        var reasoning = deltas.Select(d => d.TryGetProperty("reasoning_content", out var r) ? r.GetString() : null).ToList();
        var content = deltas.Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : null).ToList();
        Assert.Equal("The user greets me.", string.Concat(reasoning));
        Assert.Equal("Hello there.", string.Concat(content));

        // Never a tag's piece (the tags span several of the tiny model's tokens), reasoning first. How many chunks
        // depends on how far behind the client is: pieces waiting for it merge.
        Assert.DoesNotContain(deltas, d => d.GetRawText().Contains("think>", StringComparison.Ordinal) || d.GetRawText().Contains("\\u003C", StringComparison.Ordinal));
        Assert.True(reasoning.FindLastIndex(r => r is not null) < content.FindIndex(c => !string.IsNullOrEmpty(c)), "reasoning came after content");
        Assert.DoesNotContain(deltas, d => d.TryGetProperty("reasoning_content", out _) && d.TryGetProperty("content", out _));

        var usage = chunks[^1].GetProperty("usage");
        Assert.InRange(usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32(), 1, usage.GetProperty("completion_tokens").GetInt32() - 1);
    }

    [Fact]
    public async Task Reasoning_format_none_keeps_the_raw_text_in_content_streamed_or_not()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Say(Thinking, ""","reasoning_format":"none" """));
        using var response = await PostStreamAsync(_client, ChatPath, Say(Thinking, ""","stream":true,"reasoning_format":"none" """));
        var deltas = (await ReadAllEventsAsync(response)).Chunks.Select(c => c.GetProperty("choices")[0].GetProperty("delta")).ToList();

        const string Raw = "<think>\nThe user greets me.\n</think>\n\nHello there.";
        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(Raw, message.GetProperty("content").GetString());
        Assert.False(message.TryGetProperty("reasoning_content", out _));
        Assert.Equal(Raw, string.Concat(deltas.Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : null)));
        Assert.DoesNotContain(deltas, d => d.TryGetProperty("reasoning_content", out _));
    }

    [Fact]
    public async Task A_call_after_the_block_is_parsed_and_one_inside_it_is_reasoning()
    {
        const string Output = "<think>\\nMaybe <tool_call> here.\\n</think>\\n\\n<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\"}}\\n</tool_call>";
        const string Tools = ""","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]""";
        var (status, json, _) = await PostAsync(_client, ChatPath, Say(Output, Tools, maxTokens: 400));

        Assert.Equal(HttpStatusCode.OK, status);
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal("Maybe <tool_call> here.", message.GetProperty("reasoning_content").GetString());
        var call = Assert.Single(message.GetProperty("tool_calls").EnumerateArray());
        Assert.Equal("get_weather", call.GetProperty("function").GetProperty("name").GetString());
    }

    [Fact]
    public async Task A_block_holding_only_whitespace_makes_no_reasoning_content()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Say("<think>\\n\\n"));

        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.False(message.TryGetProperty("reasoning_content", out _));
        Assert.Equal(string.Empty, message.GetProperty("content").GetString());
    }

    [Fact]
    public async Task An_answer_without_a_block_is_content_unchanged()
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Say("  plain <think> text"));

        Assert.Equal(HttpStatusCode.OK, status);
        var message = json.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("  plain <think> text", message.GetProperty("content").GetString());
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

        var (chatStatus, chat, _) = await PostAsync(_client, ChatPath, Say("Hello.", ""","chat_template_kwargs":{"enable_thinking":false}"""));
        Assert.Equal(HttpStatusCode.OK, chatStatus);
        Assert.Equal("Hello.", chat.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task History_reasoning_content_of_a_tool_call_loop_reaches_the_prompt()
    {
        // The fixture's round trip with the call's reasoning given back: the call comes after the last user message,
        // so Qwen3 renders its block; the rest is llama.cpp's rendering of the case.
        var body = JsonNode.Parse(ChatTemplateFixtures.CaseJson("tool-round-trip"))!.AsObject();
        body["messages"]![1]!["reasoning_content"] = "I should look it up.";
        var (status, json, _) = await PostAsync(_client, "/apply-template", body.ToJsonString());

        Assert.Equal(HttpStatusCode.OK, status);
        var expected = ChatTemplateFixtures.ExpectedPrompt("Qwen-Qwen3-0.6B", "tool-round-trip")!.Replace(
            "<|im_start|>assistant\n<tool_call>", "<|im_start|>assistant\n<think>\nI should look it up.\n</think>\n\n<tool_call>", StringComparison.Ordinal);
        Assert.Equal(expected, json.GetProperty("prompt").GetString());
    }

    [Fact]
    public async Task History_reasoning_content_before_the_last_user_message_is_dropped_by_the_template()
    {
        var body = JsonNode.Parse(ChatTemplateFixtures.CaseJson("multi-turn"))!.AsObject();
        body["messages"]![2]!["reasoning_content"] = "A thought of an earlier turn.";
        var (status, json, _) = await PostAsync(_client, "/apply-template", body.ToJsonString());

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(ChatTemplateFixtures.ExpectedPrompt("Qwen-Qwen3-0.6B", "multi-turn"), json.GetProperty("prompt").GetString());
    }

    [Theory]
    [InlineData("3")]
    [InlineData("[\"a\"]")]
    [InlineData("{\"text\":\"a\"}")]
    public async Task A_reasoning_content_that_is_not_a_string_is_refused(string value)
    {
        var body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello.\",\"reasoning_content\":" + value + "},{\"role\":\"user\",\"content\":\"say:x\"}],\"max_tokens\":4}";
        var (status, json, _) = await PostAsync(_client, ChatPath, body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", "messages[1].reasoning_content");
    }

    [Theory]
    [InlineData("\"yes\"", "chat_template_kwargs")]
    [InlineData("{\"enable_thinking\":\"no\"}", "chat_template_kwargs.enable_thinking")]
    public async Task Chat_template_kwargs_of_the_wrong_type_are_refused(string value, string param)
    {
        var (status, json, _) = await PostAsync(_client, ChatPath, Say("x", ",\"chat_template_kwargs\":" + value));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(json, "invalid_request_error", param);
    }
}
