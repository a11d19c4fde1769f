using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Testing;
using static LlmServer.Tests.Infrastructure.ChildServer;

namespace LlmServer.Tests.Operations;

/// <summary>The real server as a child process, stopped the way an orchestrator stops it: SIGTERM.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task Sigterm_during_a_stream_lets_the_stream_finish_and_exits_with_code_0()
    {
        var log = new StringBuilder();
        var folder = Directory.CreateTempSubdirectory("llmserver-shutdown-");

        // A database of its own: the default path is relative to the working directory, shared by every child server.
        using var process = Start(log, $"--Sessions:Database={Path.Combine(folder.FullName, "sessions.db")}");
        try
        {
            using var client = new HttpClient { BaseAddress = await AddressAsync(process, log), Timeout = TimeSpan.FromSeconds(120) };
            await WaitUntilReadyAsync(client, process, log);

            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = new StringContent(
                    """{"model":"stories260K","prompt":"Once upon a time","max_tokens":60,"temperature":0,"stream":true}""",
                    Encoding.UTF8,
                    "application/json"),
            };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());

            var first = await StreamGuard.NextDataAsync(reader);
            Assert.NotNull(first);
            Assert.Equal(0, Signal(process, Sigterm));

            // The drain lets the admitted stream run to its own end: a finish reason and [DONE], not a cut connection.
            var events = new List<string>();
            while (await StreamGuard.NextDataAsync(reader) is { } data)
            {
                events.Add(data);
            }

            Assert.Equal("[DONE]", events.LastOrDefault());
            Assert.Contains(events, e => e.Contains("\"finish_reason\":\"length\"", StringComparison.Ordinal) || e.Contains("\"finish_reason\":\"stop\"", StringComparison.Ordinal));

            using var exitTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
            await process.WaitForExitAsync(exitTimeout.Token);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}; server output:\n{log}");
            lock (log)
            {
                Assert.Contains("Shutting down", log.ToString(), StringComparison.Ordinal);
            }
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Sigterm_during_a_session_stream_stores_the_answer_and_exits_with_code_0()
    {
        var data = Directory.CreateTempSubdirectory("llmserver-shutdown-");
        var database = Path.Combine(data.FullName, "sessions.db");
        try
        {
            string sessionId;
            var log = new StringBuilder();
            using (var process = Start(log, $"--Sessions:Database={database}"))
            {
                try
                {
                    using var client = new HttpClient { BaseAddress = await AddressAsync(process, log), Timeout = TimeSpan.FromSeconds(120) };
                    await WaitUntilReadyAsync(client, process, log);
                    using (var created = await client.PostAsync(new Uri("/api/sessions", UriKind.Relative), Json("""{"title":"shutdown","settings":{"maxTokens":60,"temperature":0}}""")))
                    {
                        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                        using var json = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
                        sessionId = json.RootElement.GetProperty("id").GetString()!;
                    }

                    using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{sessionId}/messages") { Content = Json("""{"text":"Once upon a time"}""") };
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                    Assert.NotNull(await StreamGuard.NextDataAsync(reader));
                    Assert.Equal(0, Signal(process, Sigterm));

                    var events = new List<string>();
                    while (await StreamGuard.NextDataAsync(reader) is { } item)
                    {
                        events.Add(item);
                    }

                    Assert.Contains("\"type\":\"done\"", events.LastOrDefault() ?? string.Empty, StringComparison.Ordinal);
                    using var exitTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
                    await process.WaitForExitAsync(exitTimeout.Token);
                    Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}; server output:\n{log}");
                }
                finally
                {
                    if (!process.HasExited)
                    {
                        process.Kill(entireProcessTree: true);
                    }
                }
            }

            // A fresh server on the same database has the whole exchange: the question and the finished answer.
            using var again = Start(log, $"--Sessions:Database={database}");
            try
            {
                using var client = new HttpClient { BaseAddress = await AddressAsync(again, log), Timeout = TimeSpan.FromSeconds(120) };
                await WaitUntilReadyAsync(client, again, log);
                using var detail = JsonDocument.Parse(await client.GetStringAsync(new Uri($"/api/sessions/{sessionId}", UriKind.Relative)));
                var messages = detail.RootElement.GetProperty("messages").EnumerateArray().ToArray();
                Assert.Equal(2, messages.Length);
                Assert.Equal("assistant", messages[1].GetProperty("role").GetString());
                Assert.False(string.IsNullOrEmpty(messages[1].GetProperty("content").GetString()));
                Assert.Contains(messages[1].GetProperty("finishReason").GetString(), new[] { "stop", "length" });
                Assert.Equal(0, Signal(again, Sigterm));
                using var exitTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                await again.WaitForExitAsync(exitTimeout.Token);
                Assert.Equal(0, again.ExitCode);
            }
            finally
            {
                if (!again.HasExited)
                {
                    again.Kill(entireProcessTree: true);
                }
            }
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }
}
