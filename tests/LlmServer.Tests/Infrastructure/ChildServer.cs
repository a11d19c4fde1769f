using System.Diagnostics;
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
    /// Starts the server on 127.0.0.1, on a free port it takes itself (<see cref="AddressAsync"/>; stories260K, one
    /// slot, 1,024 tokens, unless <paramref name="extraArgs"/> say otherwise); its output goes to <paramref name="log"/>.
    /// </summary>
    public static Process Start(StringBuilder log, params string[] extraArgs) => Start(log, (Action<string>?)null, extraArgs);

    /// <summary>As <see cref="Start(StringBuilder, string[])"/>, each output line also to <paramref name="onLine"/>.</summary>
    public static Process Start(StringBuilder log, Action<string>? onLine, params string[] extraArgs) =>
        StartOn(ServerProcess.AnyLoopbackPort, log, onLine, extraArgs);

    /// <summary>As <see cref="Start(StringBuilder, string[])"/>, on <paramref name="port"/> (a test of a port another socket holds).</summary>
    public static Process StartOn(int port, StringBuilder log, params string[] extraArgs) =>
        StartOn($"http://127.0.0.1:{port}", log, null, extraArgs);

    /// <summary>Where the server listens, once it does (fails when it exits first).</summary>
    public static Task<Uri> AddressAsync(Process process, StringBuilder log) =>
        ServerProcess.ListeningAddressAsync(process, log, TimeSpan.FromMinutes(5));

    private static Process StartOn(string url, StringBuilder log, Action<string>? onLine, string[] extraArgs) => ServerProcess.Start(
        [
            "--urls", url,
            "--Scheduler:Slots=1", "--Scheduler:ContextSize=1024",
            "--Model:Threads=1", "--Model:BatchThreads=1",
            "--Server:DrainSeconds=120",
            "--Logging:LogLevel:Default=Information",
            .. extraArgs,
        ],
        log,
        onLine);

    public static Task WaitUntilReadyAsync(HttpClient client, Process process, StringBuilder log) =>
        ServerProcess.WaitUntilReadyAsync(process, client.BaseAddress!, log, TimeSpan.FromMinutes(5));

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>Sends <paramref name="signal"/> to the process; 0 when it was delivered.</summary>
    public static int Signal(Process process, int signal) => Kill(process.Id, signal);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
