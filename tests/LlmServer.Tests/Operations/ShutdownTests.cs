using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using LlmServer.Testing;

namespace LlmServer.Tests.Operations;

/// <summary>The real server as a child process, stopped the way an orchestrator stops it: SIGTERM.</summary>
public sealed partial class ShutdownTests
{
    private const int Sigterm = 15;

    [Fact]
    public async Task Sigterm_during_a_stream_lets_the_stream_finish_and_exits_with_code_0()
    {
        var port = FreePort();
        var log = new StringBuilder();
        var folder = Directory.CreateTempSubdirectory("llmserver-shutdown-");

        // A database of its own: the default path is relative to the working directory, shared by every child server.
        using var process = StartServer(port, log, $"--Sessions:Database={Path.Combine(folder.FullName, "sessions.db")}");
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(120) };
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

            var first = await ReadEventAsync(reader);
            Assert.NotNull(first);
            Assert.Equal(0, Kill(process.Id, Sigterm));

            // The drain lets the admitted stream run to its own end: a finish reason and [DONE], not a cut connection.
            var events = new List<string>();
            while (await ReadEventAsync(reader) is { } data)
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
            var port = FreePort();
            var log = new StringBuilder();
            using (var process = StartServer(port, log, $"--Sessions:Database={database}"))
            {
                try
                {
                    using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(120) };
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
                    Assert.NotNull(await ReadEventAsync(reader));
                    Assert.Equal(0, Kill(process.Id, Sigterm));

                    var events = new List<string>();
                    while (await ReadEventAsync(reader) is { } item)
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
            port = FreePort();
            using var again = StartServer(port, log, $"--Sessions:Database={database}");
            try
            {
                using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(120) };
                await WaitUntilReadyAsync(client, again, log);
                using var detail = JsonDocument.Parse(await client.GetStringAsync(new Uri($"/api/sessions/{sessionId}", UriKind.Relative)));
                var messages = detail.RootElement.GetProperty("messages").EnumerateArray().ToArray();
                Assert.Equal(2, messages.Length);
                Assert.Equal("assistant", messages[1].GetProperty("role").GetString());
                Assert.False(string.IsNullOrEmpty(messages[1].GetProperty("content").GetString()));
                Assert.Contains(messages[1].GetProperty("finishReason").GetString(), new[] { "stop", "length" });
                Assert.Equal(0, Kill(again.Id, Sigterm));
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

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static Process StartServer(int port, StringBuilder log, params string[] extraArgs)
    {
        // The muxer running these tests, so the child runs on the same runtime even when dotnet is not on PATH.
        var dotnet = Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "LlmServer.dll"),
            "--model", TestModels.Stories260K,
            "--urls", $"http://127.0.0.1:{port}",
            "--Scheduler:Slots=1", "--Scheduler:ContextSize=1024",
            "--Model:Threads=1", "--Model:BatchThreads=1",
            "--Server:DrainSeconds=120",
            "--Logging:LogLevel:Default=Information",
        }.Concat(extraArgs))
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        process.OutputDataReceived += (_, e) => Append(log, e.Data);
        process.ErrorDataReceived += (_, e) => Append(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static void Append(StringBuilder log, string? line)
    {
        if (line is not null)
        {
            lock (log)
            {
                log.AppendLine(line);
            }
        }
    }

    private static async Task WaitUntilReadyAsync(HttpClient client, Process process, StringBuilder log)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(process.HasExited, $"The server exited early:\n{log}");
            try
            {
                using var response = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"The server did not become ready:\n{log}");
    }

    /// <summary>The data of the next server-sent event, or null at the end of the stream.</summary>
    private static async Task<string?> ReadEventAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                return line["data:".Length..].Trim();
            }
        }

        return null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
