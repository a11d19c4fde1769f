using System.Net;
using System.Text.Json;
using LlmServer.Errors;
using LlmServer.Sessions;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Sessions;
using Microsoft.AspNetCore.SignalR.Client;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Errors;

/// <summary>A full queue is refused with the one code <c>queue_full</c> by every front end but Anthropic's own 529.</summary>
[Collection(SessionsCollection.Name)]
public sealed class QueueFullCodeTests
{
    [Fact]
    public async Task A_full_queue_is_queue_full_on_the_openai_completions_responses_and_session_front_ends_and_overloaded_error_on_anthropic()
    {
        var gate = new DecodeGate();
        await using var server = await SessionTestServer.StartAsync(null, gate.Install, "--Scheduler:Slots=1", "--Scheduler:MaxQueue=0", "--Scheduler:ContextSize=1024");
        try
        {
            var client = server.Server.Client;
            await using var hub = await server.ConnectAsync();
            var session = await hub.CreateAsync(maxTokens: 4);

            // The one slot holds a generation at the closed gate; nothing may wait, so every new request is refused.
            gate.Close();
            var holding = PostAsync(client, ChatPath, """{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":2}""");
            await gate.Blocked;

            foreach (var (path, body) in new[]
            {
                (ChatPath, """{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}"""),
                ("/v1/completions", """{"prompt":"Hi","max_tokens":2}"""),
                ("/v1/responses", """{"input":"Hi","max_output_tokens":2}"""),
                ($"/api/sessions/{session.Id}/messages", """{"text":"Hi"}"""),
            })
            {
                var (status, error, response) = await PostAsync(client, path, body);
                using (response)
                {
                    Assert.True(status == HttpStatusCode.TooManyRequests, $"{path}: {status}");
                    Assert.True(error.GetProperty("error").GetProperty("code").GetString() == RefusalCodes.QueueFull, $"{path}: {error}");
                    Assert.True(response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"{path}: no Retry-After");
                }
            }

            await HubTestExtensions.AssertHubErrorAsync(RefusalCodes.QueueFull, () => hub.Send(session.Id, "Hi").CollectAsync());
            Assert.Equal(SessionErrorCodes.QueueFull, RefusalCodes.QueueFull);

            var (anthropicStatus, anthropic, anthropicResponse) = await PostAsync(client, "/v1/messages", """{"max_tokens":2,"messages":[{"role":"user","content":"Hi"}]}""");
            using (anthropicResponse)
            {
                Assert.Equal(529, (int)anthropicStatus);
                Assert.Equal("overloaded_error", anthropic.GetProperty("error").GetProperty("type").GetString());
            }

            gate.Open();
            var (heldStatus, _, heldResponse) = await holding;
            heldResponse.Dispose();
            Assert.Equal(HttpStatusCode.OK, heldStatus);
        }
        finally
        {
            gate.Open();
            server.DeleteFiles();
        }
    }
}
