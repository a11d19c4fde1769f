using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using LlmServer.Testing;

namespace LlmServer.Tests.Infrastructure;

/// <summary>The real server as a child process, for tests that signal or kill it (SIGTERM, kill -9).</summary>
internal static partial class ChildServer
{
    public const int Sigkill = 9;
    public const int Sigterm = 15;

    /// <summary>
    /// Starts the server on 127.0.0.1:<paramref name="port"/> (stories260K, one slot, 1,024 tokens, unless
    /// <paramref name="extraArgs"/> say otherwise); its output goes to <paramref name="log"/>.
    /// </summary>
    public static Process Start(int port, StringBuilder log, params string[] extraArgs)
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
        var defaults = new[]
        {
            Path.Combine(AppContext.BaseDirectory, "LlmServer.dll"),
            "--urls", $"http://127.0.0.1:{port}",
            "--Scheduler:Slots=1", "--Scheduler:ContextSize=1024",
            "--Model:Threads=1", "--Model:BatchThreads=1",
            "--Server:DrainSeconds=120",
            "--Logging:LogLevel:Default=Information",
        };
        var model = extraArgs.Contains("--model") ? [] : new[] { "--model", TestModels.Stories260K };
        foreach (var argument in defaults.Concat(model).Concat(extraArgs))
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

    public static async Task WaitUntilReadyAsync(HttpClient client, Process process, StringBuilder log)
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
    public static async Task<string?> ReadEventAsync(StreamReader reader)
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

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>Sends <paramref name="signal"/> to the process; 0 when it was delivered.</summary>
    public static int Signal(Process process, int signal) => Kill(process.Id, signal);

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

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
