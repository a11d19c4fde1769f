using System.Net;
using System.Text.Json;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// The prompt the chat API renders for a conversation (<c>/apply-template</c>), and its token count as generation
/// counts it: what the other front ends' prompts are compared with.
/// </summary>
internal static class ChatPrompt
{
    public static async Task<(string Prompt, int Tokens)> RenderAsync(HttpClient client, string chatBody)
    {
        var (status, rendered, _) = await PostAsync(client, "/apply-template", chatBody);
        Assert.Equal(HttpStatusCode.OK, status);
        var prompt = rendered.GetProperty("prompt").GetString()!;
        var (_, tokens, _) = await PostAsync(client, "/tokenize", JsonSerializer.Serialize(new { content = prompt, add_special = true, parse_special = true }));
        return (prompt, tokens.GetProperty("tokens").GetArrayLength());
    }

    /// <summary>The chat messages of one call and its result: the assistant's <c>tool_calls</c>, then the tool message.</summary>
    public static string CallAndResult(string callId, string name, string arguments, string result) => JsonSerializer.Serialize(new object[]
    {
        new { role = "assistant", content = (string?)null, tool_calls = new[] { new { id = callId, type = "function", function = new { name, arguments } } } },
        new { role = "tool", tool_call_id = callId, content = result },
    });
}
