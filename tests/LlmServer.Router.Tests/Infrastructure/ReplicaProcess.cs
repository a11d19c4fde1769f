using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using LlmServer.Testing;

namespace LlmServer.Router.Tests.Infrastructure;

/// <summary>A real LlmServer replica as a child process on stories260K with one decode thread; stopped with SIGTERM or SIGKILL.</summary>
internal sealed partial class ReplicaProcess : IAsyncDisposable
{
    private const int Sigterm = 15;

    /// <summary>Starts of a replica coming back at its address while another socket holds it (each start takes seconds).</summary>
    private const int BindAttempts = 5;

    private readonly StringBuilder _log = new();
    private readonly string[] _extraArgs;
    private Process? _process;
    private string? _ownDatabase;
    private string? _address;

    private ReplicaProcess(string[] extraArgs)
    {
        _extraArgs = extraArgs;
    }

    /// <summary><c>http://127.0.0.1:PORT</c>, the port the replica took at its first start; it comes back there.</summary>
    public string Address => _address ?? throw new InvalidOperationException("The replica has not started.");

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

        var replica = new ReplicaProcess(extraArgs) { _ownDatabase = ownDatabase };
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

    /// <summary>
    /// Starts the replica and waits until it reports ready: the first time on a port it takes itself, then again at
    /// its address, as a replica coming back does (the router knows it only there).
    /// </summary>
    public async Task RestartAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            var logged = Log.Length;
            _process?.Dispose();
            _process = ServerProcess.Start(
                [
                    "--urls", _address ?? ServerProcess.AnyLoopbackPort,
                    "--Scheduler:Slots=4", "--Scheduler:ContextSize=8192",
                    "--Model:Threads=1", "--Model:BatchThreads=1",
                    "--Logging:LogLevel:Default=Warning",
                    // The line that says where it listens.
                    "--Logging:LogLevel:Microsoft.Hosting.Lifetime=Information",
                    .. _extraArgs,
                ],
                _log);
            try
            {
                var listening = await ServerProcess.ListeningAddressAsync(_process, _log, TimeSpan.FromMinutes(5));
                _address ??= listening.GetLeftPart(UriPartial.Authority);
                break;
            }
            catch (InvalidOperationException) when (_address is not null && PortTakenSince(logged))
            {
                // While the replica was down, its free port could be given to any other socket of the run (an outgoing
                // connection lets it go again): it is tried again, then the test fails saying so.
                if (attempt == BindAttempts)
                {
                    throw new InvalidOperationException($"The replica could not come back at {_address}: another socket held the port through {BindAttempts} starts:\n{Log}");
                }
            }
        }

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

    /// <summary>Whether the replica's output since <paramref name="logged"/> characters says its address was in use.</summary>
    private bool PortTakenSince(int logged) =>
        Log[logged..].Contains($"Failed to bind to address {_address}", StringComparison.Ordinal);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
