using System.Net;
using System.Text.RegularExpressions;
using LlmServer.Tests.Anthropic;
using LlmServer.Tests.Infrastructure;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>
/// Mistral Small 3.2's template, which refuses call ids that are not nine alphanumerics, continuing conversations
/// whose ids the client chose (OpenAI's <c>call_...</c>, Anthropic's <c>toolu_...</c>): every API accepts them, the
/// prompt renders a short id for each, and the client's ids are what the API keeps.
/// </summary>
public sealed partial class MistralClientToolIdTests(MistralToolServerFixture fixture) : IClassFixture<MistralToolServerFixture>
{
    private const string ClientId = "call_Xy7pQ2vR9sT4uW1zA3bC5dE8";
    private const string Question = """{"role":"user","content":"Add 2 and 3."}""";
    private const string Arguments = """{"a":2,"b":3}""";

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task Chat_completions_continue_after_a_call_with_the_clients_own_id()
    {
        var conversation = $$"""[{{Question}},{{ChatPrompt.CallAndResult(ClientId, "add", Arguments, "5")[1..^1]}}]""";
        var (prompt, tokens) = await ChatPrompt.RenderAsync(_client, $$"""{"messages":{{conversation}},"tools":{{ToolCallingTests.AddToolJson}}}""");
        var shortId = RenderedId(prompt);
        Assert.DoesNotContain(ClientId, prompt, StringComparison.Ordinal);
        Assert.Contains($"[TOOL_RESULTS]{shortId}[TOOL_CONTENT]5[/TOOL_RESULTS]", prompt, StringComparison.Ordinal);

        var (status, answer, _) = await PostAsync(_client, "/v1/chat/completions", $$"""
            {"messages":{{conversation}},"tools":{{ToolCallingTests.AddToolJson}},"max_tokens":2,"temperature":0}
            """);
        Assert.True(status == HttpStatusCode.OK, answer.ToString());
        Assert.Equal(tokens, answer.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // The next turn renders the same id for the same call (this template moves the tools before the last user
        // message, so its prefix changes anyway; without tools it stays).
        var (next, _) = await ChatPrompt.RenderAsync(_client, $$"""
            {"messages":[{{conversation[1..^1]}},{"role":"assistant","content":"5."},{"role":"user","content":"Thanks."}],"tools":{{ToolCallingTests.AddToolJson}}}
            """);
        Assert.Equal(shortId, RenderedId(next));
        var (withoutTools, _) = await ChatPrompt.RenderAsync(_client, $$"""{"messages":{{conversation}}}""");
        var (nextWithoutTools, _) = await ChatPrompt.RenderAsync(_client, $$"""
            {"messages":[{{conversation[1..^1]}},{"role":"assistant","content":"5."},{"role":"user","content":"Thanks."}]}
            """);
        Assert.StartsWith(withoutTools, nextWithoutTools, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Responses_and_messages_accept_the_clients_own_ids_and_render_the_chat_prompt()
    {
        var (prompt, tokens) = await ChatPrompt.RenderAsync(_client, $$"""
            {"messages":[{{Question}},{{ChatPrompt.CallAndResult(ClientId, "add", Arguments, "5")[1..^1]}}],"tools":{{ToolCallingTests.AddToolJson}}}
            """);
        RenderedId(prompt);

        var (responded, response, _) = await PostAsync(_client, "/v1/responses", $$"""
            {"input":[{{Question}},{"type":"function_call","call_id":"{{ClientId}}","name":"add","arguments":"{\"a\":2,\"b\":3}"},{"type":"function_call_output","call_id":"{{ClientId}}","output":"5"}],
             "tools":[{"type":"function","name":"add","description":"Add two digits.","parameters":{{ToolCallingTests.AddSchema}}}],"max_output_tokens":2,"temperature":0,"store":false}
            """);
        Assert.True(responded == HttpStatusCode.OK, response.ToString());
        Assert.Equal(tokens, response.GetProperty("usage").GetProperty("input_tokens").GetInt32());

        // Anthropic's own client ids (toolu_ and more than nine characters) reach the template as call_ ids: renamed too.
        var (counted, count, _) = await PostAsync(_client, "/v1/messages/count_tokens", $$"""
            {"tools":{{AnthropicTemplateToolTests.Tools}},"messages":[{{Question}},
             {"role":"assistant","content":[{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"add","input":{{Arguments}}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A09q90qw90lq917835lq9","content":"5"}]}]}
            """);
        Assert.True(counted == HttpStatusCode.OK, count.ToString());
        var (anthropicPrompt, anthropicTokens) = await ChatPrompt.RenderAsync(_client, $$"""
            {"messages":[{{Question}},{{ChatPrompt.CallAndResult("call_01A09q90qw90lq917835lq9", "add", Arguments, "5")[1..^1]}}],"tools":{{ToolCallingTests.AddToolJson}}}
            """);
        RenderedId(anthropicPrompt);
        Assert.Equal(anthropicTokens, count.GetProperty("input_tokens").GetInt32());
    }

    /// <summary>The one call's id as the prompt renders it: nine alphanumerics, the same in the call and its result.</summary>
    private static string RenderedId(string prompt)
    {
        var call = CallId().Match(prompt);
        Assert.True(call.Success, prompt);
        var id = call.Groups[1].Value;
        Assert.Contains($"[TOOL_RESULTS]{id}[TOOL_CONTENT]", prompt, StringComparison.Ordinal);
        return id;
    }

    [GeneratedRegex(@"\[CALL_ID\]([A-Za-z0-9]{9})\[ARGS\]")]
    private static partial Regex CallId();
}
