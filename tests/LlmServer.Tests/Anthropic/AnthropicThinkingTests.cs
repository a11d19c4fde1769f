using System.Net;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.OpenAi;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Anthropic;

/// <summary>Reasoning as Anthropic's <c>thinking</c> blocks, through Qwen3's template and crafted output.</summary>
public sealed class AnthropicThinkingTests(Qwen3ScriptedServerFixture fixture) : IClassFixture<Qwen3ScriptedServerFixture>
{
    private const string Path = "/v1/messages";

    private readonly HttpClient _client = fixture.Server.Client;

    private static string Say(string output, string extra = "") =>
        "{\"max_tokens\":80,\"messages\":[{\"role\":\"user\",\"content\":\"" + ScriptedOutput.Prefix + output + "\"}]" + extra + "}";

    [Fact]
    public async Task The_answer_opens_with_a_thinking_block()
    {
        var (status, json, _) = await PostAsync(_client, Path, Say(ReasoningTests.Thinking));

        Assert.Equal(HttpStatusCode.OK, status);
        var content = json.GetProperty("content");
        Assert.Equal(2, content.GetArrayLength());
        Assert.Equal("thinking", content[0].GetProperty("type").GetString());
        Assert.Equal("The user greets me.", content[0].GetProperty("thinking").GetString());
        Assert.Equal(string.Empty, content[0].GetProperty("signature").GetString());
        Assert.Equal("text", content[1].GetProperty("type").GetString());
        Assert.Equal("Hello there.", content[1].GetProperty("text").GetString());
        Assert.Equal("end_turn", json.GetProperty("stop_reason").GetString());
    }

    [Theory]
    [InlineData("<think>\\nOnly thought.", "thinking")]
    [InlineData("<think>\\n\\n", "text")]
    public async Task An_answer_has_one_block_when_it_only_thought_or_its_block_held_nothing(string output, string type)
    {
        // As the stream: no empty text block after the thinking, no empty thinking block before the text.
        var (status, json, _) = await PostAsync(_client, Path, Say(output));

        Assert.Equal(HttpStatusCode.OK, status);
        var block = Assert.Single(json.GetProperty("content").EnumerateArray());
        Assert.Equal(type, block.GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_stream_sends_the_thinking_block_first_then_the_text_block()
    {
        using var response = await PostStreamAsync(_client, Path, Say(ReasoningTests.Thinking, ",\"stream\":true"));
        var events = await NamedSse.ReadAllAsync(response);

        var starts = events.Where(e => e.Name == "content_block_start").Select(e => e.Data).ToList();
        Assert.Equal(["thinking", "text"], starts.Select(s => s.GetProperty("content_block").GetProperty("type").GetString()));
        Assert.Equal([0, 1], starts.Select(s => s.GetProperty("index").GetInt32()));
        var deltas = events.Where(e => e.Name == "content_block_delta").Select(e => e.Data).ToList();
        Assert.Equal("The user greets me.", string.Concat(deltas.Where(d => d.GetProperty("index").GetInt32() == 0).Select(d => d.GetProperty("delta").GetProperty("thinking").GetString())));
        Assert.All(deltas.Where(d => d.GetProperty("index").GetInt32() == 0), d => Assert.Equal("thinking_delta", d.GetProperty("delta").GetProperty("type").GetString()));
        Assert.Equal("Hello there.", string.Concat(deltas.Where(d => d.GetProperty("index").GetInt32() == 1).Select(d => d.GetProperty("delta").GetProperty("text").GetString())));
        Assert.Equal([0, 1], events.Where(e => e.Name == "content_block_stop").Select(e => e.Data.GetProperty("index").GetInt32()));
    }

    [Fact]
    public async Task An_answer_without_reasoning_has_only_its_text_block()
    {
        using var response = await PostStreamAsync(_client, Path, Say("Hello.", ",\"stream\":true"));
        var events = await NamedSse.ReadAllAsync(response);

        var start = Assert.Single(events, e => e.Name == "content_block_start");
        Assert.Equal("text", start.Data.GetProperty("content_block").GetProperty("type").GetString());
        Assert.Equal("Hello.", string.Concat(events.Where(e => e.Name == "content_block_delta").Select(e => e.Data.GetProperty("delta").GetProperty("text").GetString())));
    }

    [Fact]
    public async Task A_history_with_thinking_blocks_is_accepted()
    {
        const string History = """
            {"max_tokens":80,"messages":[
              {"role":"user","content":"Hi"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"Greet back.","signature":""},{"type":"redacted_thinking","data":"abc"},{"type":"text","text":"Hello."}]},
              {"role":"user","content":"say:Bye."}]}
            """;
        var (status, json, _) = await PostAsync(_client, Path, History);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Bye.", json.GetProperty("content")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Thinking_disabled_closes_the_block_in_the_prompt()
    {
        // Qwen3 renders an empty block after the generation prompt: more prompt tokens.
        const string Body = """{"messages":[{"role":"user","content":"Hi"}]""";
        var (_, thinking, _) = await PostAsync(_client, Path + "/count_tokens", Body + "}");
        var (status, notThinking, _) = await PostAsync(_client, Path + "/count_tokens", Body + ""","thinking":{"type":"disabled"}}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(notThinking.GetProperty("input_tokens").GetInt32() > thinking.GetProperty("input_tokens").GetInt32());
    }

    [Theory]
    [InlineData("{\"type\":\"sometimes\"}")]
    [InlineData("{\"budget_tokens\":1024}")]
    public async Task An_unknown_thinking_type_is_refused(string thinking)
    {
        var (status, json, _) = await PostAsync(_client, Path, Say("x", ",\"thinking\":" + thinking));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("error", json.GetProperty("type").GetString());
        Assert.Equal("invalid_request_error", json.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("thinking.type", json.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
