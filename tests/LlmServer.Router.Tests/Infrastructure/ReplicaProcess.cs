using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using LlmServer.Testing;

namespace LlmServer.Router.Tests.Infrastructure;

/// <summary>A real LlmServer replica as a child process on stories260K with one decode thread; stopped with SIGTERM or SIGKILL.</summary>
internal sealed partial class ReplicaProcess : IAsyncDisposable
{
    private const int Sigterm = 15;

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

    public string Log => ServerProcess.Read(_log);

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
        try
        {
            await replica.RestartAsync();
        }
        catch
        {
            // A replica that never became ready is not the caller's to dispose: it would outlive the test.
            await replica.DisposeAsync();
            throw;
        }

        return replica;
    }

    /// <summary>Starts the replica (again) on its port and waits until it reports ready.</summary>
    public async Task RestartAsync()
    {
        _process?.Dispose();
        _process = ServerProcess.Start(
            [
                "--urls", Address,
                "--Scheduler:Slots=4", "--Scheduler:ContextSize=8192",
                "--Model:Threads=1", "--Model:BatchThreads=1",
                "--Logging:LogLevel:Default=Warning",
                .. _extraArgs,
            ],
            _log);
        await ServerProcess.WaitUntilReadyAsync(_process, new Uri(Address), _log, TimeSpan.FromMinutes(5));
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

    /// <summary>SIGTERM, as an orchestrator stops a replica: the first begins its drain, a second stops it at once.</summary>
    public void Terminate()
    {
        if (Kill(_process!.Id, Sigterm) != 0)
        {
            throw new InvalidOperationException($"SIGTERM was not delivered (errno {Marshal.GetLastPInvokeError()}):\n{Log}");
        }
    }

    /// <summary>Waits (at most <paramref name="within"/>) for the replica to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan within)
    {
        using var deadline = new CancellationTokenSource(within);
        await _process!.WaitForExitAsync(deadline.Token);
        return _process.ExitCode;
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

    public static int FreePort() => ServerProcess.FreePort();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
