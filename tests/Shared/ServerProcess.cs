using System.Diagnostics;
using System.Net;
using System.Runtime.CompilerServices;
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
    /// The <c>--urls</c> of a child server that takes a free port itself (<see cref="ListeningAddressAsync"/> says
    /// which). A port picked by the test and freed for the child can be taken by another socket of a busy run before
    /// the child binds it, even by another test's server, which the readiness poll would then ask in its place.
    /// </summary>
    public const string AnyLoopbackPort = "http://127.0.0.1:0";

    /// <summary>What ASP.NET Core logs (Information, Microsoft.Hosting.Lifetime) for each address it listens on.</summary>
    private const string ListeningLine = "Now listening on: ";

    private static readonly ConditionalWeakTable<Process, Task<Uri>> Addresses = [];

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
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        Addresses.Add(process, listening.Task);
        process.OutputDataReceived += (_, e) => Append(log, e.Data, onLine, listening);
        process.ErrorDataReceived += (_, e) => Append(log, e.Data, onLine, listening);
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

            // Another process, whose log level may hide every line: readiness shows only over HTTP, so it is polled.
            // Past the deadline, the next request is cancelled at once and reports the timeout.
            await Task.Delay(100, CancellationToken.None);
        }
    }

    /// <summary>
    /// The address the server says it listens on (started on <see cref="AnyLoopbackPort"/>, at the Information log
    /// level); fails when the process exits first or <paramref name="within"/> passes.
    /// </summary>
    public static async Task<Uri> ListeningAddressAsync(Process process, StringBuilder log, TimeSpan within)
    {
        if (!Addresses.TryGetValue(process, out var listening))
        {
            throw new InvalidOperationException("The process was not started by ServerProcess.Start.");
        }

        Task first;
        try
        {
            first = await Task.WhenAny(listening, process.WaitForExitAsync()).WaitAsync(within);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"The server did not say where it listens within {within}:\n{Read(log)}", e);
        }

        return first == listening ? await listening : throw new InvalidOperationException($"The server exited before it listened:\n{Read(log)}");
    }

    public static string Read(StringBuilder log)
    {
        lock (log)
        {
            return log.ToString();
        }
    }

    private static void Append(StringBuilder log, string? line, Action<string>? onLine, TaskCompletionSource<Uri> listening)
    {
        if (line is not null)
        {
            lock (log)
            {
                log.AppendLine(line);
            }

            // On the reader's thread-pool thread, where a throw would end the test host: a line that only looks like
            // the announcement is skipped.
            var at = line.IndexOf(ListeningLine, StringComparison.Ordinal);
            if (at >= 0 && Uri.TryCreate(line[(at + ListeningLine.Length)..].Trim(), UriKind.Absolute, out var address))
            {
                listening.TrySetResult(address);
            }

            onLine?.Invoke(line);
        }
    }
}
