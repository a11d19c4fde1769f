using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Testing;
using static LlmServer.Tests.Infrastructure.ChildServer;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>
/// An answer whose first token is "{" and more that no call continues with ("{}"). Fed that token's text, the lazy
/// tool grammar would refuse it and llama.cpp throw through P/Invoke, ending the whole server: so the server runs as
/// a child process here, and the test fails (with its log) if it dies.
/// </summary>
public sealed class BraceTokenTests
{
    /// <summary>Only a hang guard (never a timing assertion): model load and a few tokens on a busy 2-core machine.</summary>
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(5);

    [Theory]
    [InlineData("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3")]
    [InlineData("google-gemma-2-2b-it.jinja", "generic")]
    public async Task A_first_token_of_a_brace_and_text_no_call_continues_with_is_text_and_the_server_lives(string template, string format)
    {
        var data = Directory.CreateTempSubdirectory("llmserver-brace-token-");
        var log = new StringBuilder();
        using var process = Start(
            log,
            "--model", TestModels.TinyRandomLlama2, $"--Sessions:Database={Path.Combine(data.FullName, "sessions.db")}",
            "--Model:ChatTemplateFile=" + Path.Combine(ChatTemplateFixtures.Root, "templates", template));
        try
        {
            using var client = new HttpClient { BaseAddress = await AddressAsync(process, log), Timeout = HangGuard };
            await WaitUntilReadyAsync(client, process, log);
            var props = JsonDocument.Parse(await client.GetStringAsync(new Uri("/props", UriKind.Relative))).RootElement;
            Assert.Equal(format, props.GetProperty("tool_call_format").GetString());

            // Llama 2's vocabulary holds "{}" as one token ("▁{}" here, the word's first): forced first, it opens the
            // answer with a brace the grammar would start a call from, and a "}" no call takes next.
            var (_, tokenized, _) = await PostAsync(client, "/tokenize", """{"content":"{}","with_pieces":true}""");
            var token = Assert.Single(tokenized.GetProperty("tokens").EnumerateArray());
            Assert.Equal("{}", token.GetProperty("piece").GetString()!.Trim());

            var request = $$"""
                {"messages":[{"role":"user","content":"Say {}."}],"tools":{{ToolCallingTests.AddToolJson}},"tool_choice":"auto",
                 "logit_bias":{"{{token.GetProperty("id").GetInt32()}}":100},"max_tokens":3,"temperature":0}
                """;
            (HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response) answer;
            try
            {
                answer = await PostAsync(client, ChatPath, request);
            }
            catch (HttpRequestException e)
            {
                await process.WaitForExitAsync().WaitAsync(HangGuard);
                Assert.Fail($"The server died answering (exit code {process.ExitCode}, {e.Message}). Its log:\n{ServerProcess.Read(log)}");
                throw;
            }

            using var response = answer.Response;
            Assert.Equal(HttpStatusCode.OK, answer.Status);

            // No call: the grammar never woke, and the braces are the answer's text.
            var message = answer.Body.GetProperty("choices")[0].GetProperty("message");
            Assert.False(message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array, answer.Body.ToString());
            Assert.Equal("{}{}{}", message.GetProperty("content").GetString()!.Replace(" ", string.Empty, StringComparison.Ordinal));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync();
            data.Delete(recursive: true);
        }
    }
}
