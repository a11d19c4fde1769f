using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace LlmServer.Testing;

/// <summary>
/// The real server (the <c>LlmServer.dll</c> built beside the tests) as a child process: the one helper of the tests
/// that kill, signal or restart it (<c>ChildServer</c> in LlmServer.Tests, the router tests' replicas). Callers
/// name their own settings; pass <c>--Sessions:Database</c> so no run shares a database.
/// </summary>
internal static class ServerProcess
{
    /// <summary>
    /// Starts the server with <paramref name="arguments"/> (on stories260K unless they name a <c>--model</c>); its
    /// output goes to <paramref name="log"/> (read it with <see cref="Read"/>), each line also to
    /// <paramref name="onLine"/>, so a test can wait for what the server logs.
    /// </summary>
    public static Process Start(IEnumerable<string> arguments, StringBuilder log, Action<string>? onLine = null)
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
        var args = arguments.ToList();
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "LlmServer.dll"));
        if (!args.Contains("--model"))
        {
            start.ArgumentList.Add("--model");
            start.ArgumentList.Add(TestModels.Stories260K);
        }

        foreach (var argument in args)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        process.OutputDataReceived += (_, e) => Append(log, e.Data, onLine);
        process.ErrorDataReceived += (_, e) => Append(log, e.Data, onLine);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Waits until <c>/health/ready</c> answers 200; fails when the process exits or <paramref name="within"/> passes.</summary>
    public static async Task WaitUntilReadyAsync(Process process, Uri address, StringBuilder log, TimeSpan within)
    {
        using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(10) };
        using var deadline = new CancellationTokenSource(within);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The server exited early:\n{Read(log)}");
            }

            try
            {
                using var response = await client.GetAsync(new Uri("/health/ready", UriKind.Relative), deadline.Token);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (OperationCanceledException) when (!deadline.IsCancellationRequested)
            {
                // One probe outlasted the client's timeout (a starting server on a busy machine): ask again.
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"The server did not become ready:\n{Read(log)}");
            }
            catch (OperationCanceledException)
            {
                // One probe outlasted the client's own timeout (a starved machine): not ready yet; the deadline decides.
            }

            // Another process, whose log level may hide every line: readiness shows only over HTTP, so it is polled.
            // Past the deadline, the next request is cancelled at once and reports the timeout.
            await Task.Delay(100, CancellationToken.None);
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static string Read(StringBuilder log)
    {
        lock (log)
        {
            return log.ToString();
        }
    }

    private static void Append(StringBuilder log, string? line, Action<string>? onLine)
    {
        if (line is not null)
        {
            lock (log)
            {
                log.AppendLine(line);
            }

            onLine?.Invoke(line);
        }
    }
}
