using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// A throwaway PostgreSQL server for the tests: initdb in a temp folder, as the unprivileged <c>postgres</c> user
/// when the tests run as root (PostgreSQL refuses root), on a loopback port found free, stopped at the end. Needs
/// Debian's <c>postgresql</c> package (<c>.ci/run</c> installs it); a missing server fails the tests.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    /// <summary>Starts on a newly found port after another socket took the one given.</summary>
    private const int StartAttempts = 5;

    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("llmserver-pg-");
    private string _bin = "";
    private int _databases;

    public int Port { get; private set; }

    private string Data => Path.Combine(_folder.FullName, "data");

    private string ServerLog => Path.Combine(_folder.FullName, "server.log");

    public async Task InitializeAsync()
    {
        _bin = FindBinaries();
        if (RunningAsRoot())
        {
            await RunAsync("chown", ["-R", "postgres:", _folder.FullName]);
        }

        await RunPostgresToolAsync("initdb", ["-D", Data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        for (var attempt = 1; ; attempt++)
        {
            // PostgreSQL takes no port of its own choosing (port 0 is refused; the port also names its socket file):
            // it is given one found free, which another socket of a busy run can bind first. Then it starts on another.
            Port = FreePort();
            File.Delete(ServerLog);
            try
            {
                await RunPostgresToolAsync("pg_ctl", [
                    "-D", Data, "-l", ServerLog, "-w", "-t", "120",
                    "-o", $"-p {Port} -k {_folder.FullName} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                    "start",
                ]);
                return;
            }
            catch (InvalidOperationException) when (attempt < StartAttempts && File.ReadAllText(ServerLog).Contains("Address already in use", StringComparison.Ordinal))
            {
                // Lost the port: the next attempt finds another.
            }
        }
    }

    /// <summary>A new, empty database on the server; its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"llmserver_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}"[..40];
        await using (var connection = new NpgsqlConnection(ConnectionString("postgres")))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = $"CREATE DATABASE {name};";
            await command.ExecuteNonQueryAsync();
        }

        return ConnectionString(name);
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        try
        {
            await RunPostgresToolAsync("pg_ctl", ["-D", Data, "-m", "immediate", "-w", "stop"]);
        }
        finally
        {
            _folder.Delete(recursive: true);
        }
    }

    private string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Username = "postgres", Database = database, Pooling = true }.ConnectionString;

    private static string FindBinaries()
    {
        var root = new DirectoryInfo("/usr/lib/postgresql");
        var bin = root.Exists
            ? root.GetDirectories().OrderByDescending(d => int.TryParse(d.Name, CultureInfo.InvariantCulture, out var v) ? v : 0).Select(d => Path.Combine(d.FullName, "bin")).FirstOrDefault(b => File.Exists(Path.Combine(b, "initdb")))
            : null;
        return bin ?? throw new InvalidOperationException("PostgreSQL was not found under /usr/lib/postgresql (apt-get install postgresql): the PostgreSQL store's tests need it.");
    }

    private Task RunPostgresToolAsync(string tool, string[] arguments) =>
        RunningAsRoot()
            ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(_bin, tool), .. arguments])
            : RunAsync(Path.Combine(_bin, tool), arguments);

    private static bool RunningAsRoot() => Environment.UserName == "root";

    private static async Task RunAsync(string file, string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{await output}\n{await error}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
