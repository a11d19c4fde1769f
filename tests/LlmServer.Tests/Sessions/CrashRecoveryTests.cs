using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Sessions;
using LlmServer.Testing;
using Microsoft.Extensions.Options;
using static LlmServer.Tests.Infrastructure.ChildServer;

namespace LlmServer.Tests.Sessions;

/// <summary>A server killed mid-answer (kill -9) keeps the answer (its reasoning too) up to its last checkpoint, marked interrupted.</summary>
public sealed class CrashRecoveryTests
{
    /// <summary>
    /// Only a hang guard for each step (never a timing assertion): generous for a busy 2-core machine running
    /// synth110m on one thread; a step that takes longer fails saying which one, with the server's log.
    /// </summary>
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(5);

    /// <summary>What the server logs (Debug, category LlmServer.Sessions) when it has stored a checkpoint.</summary>
    private const string CheckpointLogged = "a checkpoint of the streaming answer is stored";

    /// <param name="template">
    /// A chat template in place of the model's own: DeepSeek-R1's opens a thinking block in the prompt, so the whole
    /// answer so far is the model's reasoning, which its checkpoints keep apart from the (empty) text.
    /// </param>
    [Theory]
    [InlineData(null)]
    [InlineData("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja")]
    public async Task Kill_9_mid_answer_then_restart_keeps_the_checkpointed_partial_answer_as_interrupted(string? template)
    {
        var data = Directory.CreateTempSubdirectory("llmserver-crash-");
        var database = Path.Combine(data.FullName, "sessions.db");

        // synth110m is slow enough that a 2,000-token answer is still streaming when it is killed below; a checkpoint
        // every 2 tokens makes the first one come at once, and the server logs each one it stores (Debug).
        string[] args =
        [
            "--model", TestModels.Synth110M, "--Scheduler:ContextSize=4096", $"--Sessions:Database={database}", "--Sessions:CheckpointTokens=2",
            "--Logging:LogLevel:LlmServer.Sessions=Debug",
            .. template is null ? [] : new[] { "--Model:ChatTemplateFile=" + Path.Combine(ChatTemplateFixtures.Root, "templates", template) },
        ];
        try
        {
            string sessionId;
            SessionMessage atKill;
            var log = new StringBuilder();
            var checkpointed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using (var process = Start(log, OnLine, args))
            {
                try
                {
                    using var client = new HttpClient { BaseAddress = await AddressAsync(process, log), Timeout = HangGuard };
                    await WaitUntilReadyAsync(client, process, log);
                    sessionId = await CreateSessionAsync(client);
                    using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{sessionId}/messages") { Content = Json("""{"text":"Once upon a time"}""") };
                    using var response = await Guarded(() => client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead), "response headers for the answer", log);
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);

                    // The event that proves a checkpoint: the server logs that it stored the partial answer.
                    // A server that exits first fails the test now, with its log, not at the hang guard.
                    var first = await Guarded(() => Task.WhenAny(checkpointed.Task, process.WaitForExitAsync()).WaitAsync(HangGuard), "checkpoint of the answer", log);
                    Assert.True(first == checkpointed.Task, $"The server exited before it stored a checkpoint. Its log:\n{ServerProcess.Read(log)}");

                    Assert.Equal(0, Signal(process, Sigkill));
                    await process.WaitForExitAsync();

                    // What the killed server had committed: the answer so far, not finished.
                    atKill = (await ReadStoredAsync(database, sessionId))[^1];
                    Assert.True(atKill.Role == "assistant" && atKill.FinishReason is null, $"the answer had already finished ({atKill.FinishReason}) when the server was killed");
                }
                finally
                {
                    if (!process.HasExited)
                    {
                        process.Kill(entireProcessTree: true);
                    }
                }
            }

            using var again = Start(log, args);
            try
            {
                using var client = new HttpClient { BaseAddress = await AddressAsync(again, log), Timeout = HangGuard };
                await WaitUntilReadyAsync(client, again, log);
                using var detail = JsonDocument.Parse(await client.GetStringAsync(new Uri($"/api/sessions/{sessionId}", UriKind.Relative)));
                Assert.False(detail.RootElement.GetProperty("info").GetProperty("generating").GetBoolean());
                var messages = detail.RootElement.GetProperty("messages").EnumerateArray().ToArray();
                Assert.Equal(["user", "assistant"], messages.Select(m => m.GetProperty("role").GetString()));
                var answer = messages[1];
                Assert.Equal("interrupted", answer.GetProperty("finishReason").GetString());
                Assert.Equal(atKill.Content, answer.GetProperty("content").GetString());
                Assert.Equal(atKill.Reasoning, answer.GetProperty("reasoning").GetString());
                Assert.False(string.IsNullOrEmpty(template is null ? atKill.Content : atKill.Reasoning));
                Assert.Equal(0, answer.GetProperty("contextStart").GetInt32());

                // The conversation goes on from there.
                using (var shorter = await client.PatchAsync(new Uri($"/api/sessions/{sessionId}", UriKind.Relative), Json("""{"settings":{"maxTokens":8,"temperature":0}}""")))
                {
                    Assert.Equal(HttpStatusCode.OK, shorter.StatusCode);
                }

                using var next = await Guarded(() => client.PostAsync(new Uri($"/api/sessions/{sessionId}/messages", UriKind.Relative), Json("""{"text":"And then?"}""")), "answer after the restart", log);
                Assert.Equal(HttpStatusCode.OK, next.StatusCode);
                Assert.Contains("\"type\":\"done\"", await next.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            finally
            {
                if (!again.HasExited)
                {
                    again.Kill(entireProcessTree: true);
                }
            }

            void OnLine(string line)
            {
                if (line.Contains(CheckpointLogged, StringComparison.Ordinal))
                {
                    checkpointed.TrySetResult();
                }
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            data.Delete(recursive: true);
        }
    }

    private static Task Guarded(Func<Task> step, string what, StringBuilder log) =>
        Guarded(async () =>
        {
            await step();
            return true;
        }, what, log);

    /// <summary>A step under the hang guard: past it, a failure that names the step and shows the server's log.</summary>
    private static async Task<T> Guarded<T>(Func<Task<T>> step, string what, StringBuilder log)
    {
        try
        {
            return await step();
        }
        catch (Exception ex) when (ex is TimeoutException or TaskCanceledException)
        {
            throw new TimeoutException($"No {what} within the hang guard of {HangGuard} (the machine may be overloaded: load average {LoadAverage()}). The server's log:\n{ServerProcess.Read(log)}", ex);
        }
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "unknown";

    private static async Task<string> CreateSessionAsync(HttpClient client)
    {
        using var created = await client.PostAsync(
            new Uri("/api/sessions", UriKind.Relative),
            Json("""{"title":"crash","settings":{"maxTokens":2000,"temperature":0}}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("id").GetString()!;
    }

    /// <summary>The messages as committed in the database file.</summary>
    private static async Task<IReadOnlyList<SessionMessage>> ReadStoredAsync(string database, string sessionId)
    {
        using var store = new SqliteSessionStore(Options.Create(new SessionOptions { Database = database }));
        var conversation = await store.GetConversationAsync(null, sessionId, CancellationToken.None);
        return conversation!.Messages;
    }
}
