using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using LlmServer.Testing;
using static LlmServer.Tests.Infrastructure.ChildServer;

namespace LlmServer.Tests.Operations;

/// <summary>
/// A server that cannot start says why in one message, without a stack trace, and exits with code 1 (README,
/// "Configuration"): every invalid setting at once, a model file that does not exist, a port another process holds.
/// </summary>
public sealed class StartupProblemTests
{
    [Fact]
    public async Task Invalid_settings_are_all_listed_in_one_message_and_the_exit_code_is_1()
    {
        var (exitCode, output) = await RunUntilExitAsync(
            (log, args) => Start(log, args),
            "--Scheduler:Slots=0",
            "--Server:DrainSeconds=-1",
            "--Limits:RequestsPerMinute=-5",
            "--Sessions:MaxTitleLength=0");

        Assert.True(exitCode == 1, $"exit code {exitCode}; output:\n{output}");
        Assert.Contains("The server cannot start: 4 settings are invalid.", output, StringComparison.Ordinal);
        Assert.Contains("Scheduler:Slots must be", output, StringComparison.Ordinal);
        Assert.Contains("Server:DrainSeconds must be", output, StringComparison.Ordinal);
        Assert.Contains("Limits:RequestsPerMinute must be", output, StringComparison.Ordinal);
        Assert.Contains("Sessions:MaxTitleLength must be", output, StringComparison.Ordinal);
        AssertNoStackTrace(output);
    }

    [Theory]
    [InlineData("--Scheduler:Slots=abc", "'abc' at 'Scheduler:Slots'")]
    [InlineData("--Server:DrainSeconds=soon", "'soon' at 'Server:DrainSeconds'")]
    public async Task A_value_not_of_its_settings_type_is_named_and_the_exit_code_is_1(string setting, string named)
    {
        var (exitCode, output) = await RunUntilExitAsync((log, args) => Start(log, args), setting);

        Assert.True(exitCode == 1, $"exit code {exitCode}; output:\n{output}");
        Assert.Contains("The server cannot start: a setting is invalid.", output, StringComparison.Ordinal);
        Assert.Contains(named, output, StringComparison.Ordinal);
        AssertNoStackTrace(output);
    }

    [Fact]
    public async Task A_model_file_that_does_not_exist_is_named_and_the_exit_code_is_1()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"llmserver-missing-{Guid.NewGuid():N}.gguf");
        var (exitCode, output) = await RunUntilExitAsync(
            (log, args) => ServerProcess.Start(["--model", missing, "--urls", ServerProcess.AnyLoopbackPort, .. args], log));

        Assert.True(exitCode == 1, $"exit code {exitCode}; output:\n{output}");
        Assert.Contains($"Model file '{missing}' does not exist.", output, StringComparison.Ordinal);
        AssertNoStackTrace(output);
    }

    [Fact]
    public async Task A_missing_model_file_and_invalid_settings_are_reported_together()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"llmserver-missing-{Guid.NewGuid():N}.gguf");
        var (exitCode, output) = await RunUntilExitAsync(
            (log, args) => Start(log, args),
            "--model", missing,
            "--Scheduler:Slots=0");

        Assert.True(exitCode == 1, $"exit code {exitCode}; output:\n{output}");
        Assert.Contains("The server cannot start: 2 settings are invalid.", output, StringComparison.Ordinal);
        Assert.Contains("Scheduler:Slots must be", output, StringComparison.Ordinal);
        Assert.Contains($"Model file '{missing}' does not exist.", output, StringComparison.Ordinal);
        Assert.Single(output.Split('\n'), line => line.Contains("does not exist", StringComparison.Ordinal));
        AssertNoStackTrace(output);
    }

    [Theory]
    [InlineData("--Scheduler:Slots=0", "Scheduler:Slots must be")]
    [InlineData("--Model:Download:Sha256=not-a-hash", "Model:Download:Sha256 'not-a-hash' must be 64 hexadecimal digits")]
    public async Task An_invalid_setting_is_reported_before_the_model_is_downloaded(string invalid, string named)
    {
        // No model given and none in the folder: a valid configuration would download one now.
        var folder = Directory.CreateTempSubdirectory("llmserver-download-").FullName;
        var (exitCode, output) = await RunUntilExitAsync(
            (log, args) => Start(log, args),
            "--model", string.Empty,
            $"--Model:Download:Directory={folder}",
            "--Model:Download:Url=http://127.0.0.1:9/model.gguf",
            invalid);

        Assert.True(exitCode == 1, $"exit code {exitCode}; output:\n{output}");
        Assert.Contains("The server cannot start: a setting is invalid.", output, StringComparison.Ordinal);
        Assert.Contains(named, output, StringComparison.Ordinal);

        // The downloader announces itself ("... none in FOLDER: downloading URL") before it writes anything.
        Assert.DoesNotContain("downloading", output, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
        AssertNoStackTrace(output);
    }

    [Fact]
    public async Task Download_settings_are_checked_even_when_a_model_is_given()
    {
        // The test model is given, so nothing will be downloaded; a typo in the section still fails the start.
        var (exitCode, output) = await RunUntilExitAsync(
            (log, args) => Start(log, args),
            "--Model:Download:Attempts=0",
            "--Model:Download:StallSeconds=86401");

        Assert.True(exitCode == 1, $"exit code {exitCode}; output:\n{output}");
        Assert.Contains("The server cannot start: 2 settings are invalid.", output, StringComparison.Ordinal);
        Assert.Contains("Model:Download:Attempts must be 1 or more.", output, StringComparison.Ordinal);
        Assert.Contains("Model:Download:StallSeconds must be 1 to 86400 (a day).", output, StringComparison.Ordinal);
        AssertNoStackTrace(output);
    }

    [Fact]
    public async Task A_port_in_use_is_named_and_the_exit_code_is_1()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var port = ((IPEndPoint)holder.LocalEndpoint).Port;

        var (exitCode, output) = await RunUntilExitAsync((log, args) => StartOn(port, log, args), $"--Sessions:Database={Path.Combine(Path.GetTempPath(), $"llmserver-port-{Guid.NewGuid():N}.db")}");

        Assert.True(exitCode == 1, $"exit code {exitCode}; output:\n{output}");
        Assert.Contains($"The server cannot start: Failed to bind to address http://127.0.0.1:{port}", output, StringComparison.Ordinal);
        Assert.Contains("Another process listens there", output, StringComparison.Ordinal);
        AssertNoStackTrace(output);
    }

    private static async Task<(int ExitCode, string Output)> RunUntilExitAsync(Func<StringBuilder, string[], Process> start, params string[] args)
    {
        var log = new StringBuilder();
        using var process = start(log, args);
        try
        {
            // Only a hang guard: the process exits on its own.
            using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await process.WaitForExitAsync(hang.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }

        return (process.ExitCode, ServerProcess.Read(log));
    }

    private static void AssertNoStackTrace(string output)
    {
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception:", output, StringComparison.Ordinal);
    }
}
