using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using LlmServer.Testing;

namespace LlmServer.Router.Tests.Infrastructure;

/// <summary>A real LlmServer replica as a child process on stories260K with one decode thread; killed with SIGKILL.</summary>
internal sealed class ReplicaProcess : IAsyncDisposable
{
    private readonly StringBuilder _log = new();
    private readonly string[] _extraArgs;
    private Process? _process;
    private string? _ownDatabase;

    private ReplicaProcess(int port, string[] extraArgs)
    {
        Port = port;
        _extraArgs = extraArgs;
    }

    public int Port { get; }

    public string Address => $"http://127.0.0.1:{Port}";

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Starts a replica; without a <c>--Sessions:Database</c> argument it gets a database of its own.</summary>
    public static async Task<ReplicaProcess> StartAsync(params string[] extraArgs)
    {
        string? ownDatabase = null;
        if (!extraArgs.Any(a => a.StartsWith("--Sessions:Database=", StringComparison.Ordinal)))
        {
            ownDatabase = Path.Combine(Path.GetTempPath(), $"llmserver-replica-{Guid.NewGuid():N}.db");
            extraArgs = [.. extraArgs, $"--Sessions:Database={ownDatabase}"];
        }

        var replica = new ReplicaProcess(FreePort(), extraArgs) { _ownDatabase = ownDatabase };
        await replica.RestartAsync();
        return replica;
    }

    /// <summary>Starts the replica (again) on its port and waits until it reports ready.</summary>
    public async Task RestartAsync()
    {
        _process?.Dispose();
        var dotnet = Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        var model = _extraArgs.Contains("--model") ? [] : new[] { "--model", TestModels.Stories260K };
        foreach (var argument in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "LlmServer.dll"),
        }.Concat(model).Concat(new[]
        {
            "--urls", Address,
            "--Scheduler:Slots=4", "--Scheduler:ContextSize=8192",
            "--Model:Threads=1", "--Model:BatchThreads=1",
            "--Logging:LogLevel:Default=Warning",
        }).Concat(_extraArgs))
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await WaitUntilReadyAsync();
    }

    /// <summary>kill -9: the replica dies at once, mid-answer, without draining.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        if (_ownDatabase is not null)
        {
            foreach (var file in new[] { _ownDatabase, _ownDatabase + "-wal", _ownDatabase + "-shm" })
            {
                File.Delete(file);
            }
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task WaitUntilReadyAsync()
    {
        using var client = new HttpClient { BaseAddress = new Uri(Address), Timeout = TimeSpan.FromSeconds(10) };
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        while (true)
        {
            Assert.False(_process!.HasExited, $"The replica exited early:\n{Log}");
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
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"The replica did not become ready:\n{Log}");
            }

            await Task.Delay(100, deadline.Token);
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }
}
