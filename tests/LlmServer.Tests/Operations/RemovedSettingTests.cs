using System.Text;
using static LlmServer.Tests.Infrastructure.ChildServer;

namespace LlmServer.Tests.Operations;

/// <summary>Settings that no longer exist, still set, are named in a warning at start rather than ignored silently.</summary>
public sealed class RemovedSettingTests
{
    [Fact]
    public async Task Removed_limits_settings_still_set_get_a_warning_at_start()
    {
        var folder = Directory.CreateTempSubdirectory("llmserver-removed-setting-");
        var paths = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hubMethods = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new StringBuilder();
        using var process = Start(
            log,
            line =>
            {
                if (line.Contains("Limits:GenerationPaths is no longer read", StringComparison.Ordinal))
                {
                    paths.TrySetResult();
                }

                if (line.Contains("Limits:HubGenerationMethods is no longer read", StringComparison.Ordinal))
                {
                    hubMethods.TrySetResult();
                }
            },
            $"--Sessions:Database={Path.Combine(folder.FullName, "sessions.db")}",
            "--Limits:GenerationPaths:0=/v1/chat/completions",
            "--Limits:HubGenerationMethods:0=SendMessage");
        try
        {
            // Only a hang guard: the warnings are written before the server listens.
            using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await Task.WhenAll(paths.Task, hubMethods.Task).WaitAsync(hang.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync();
            folder.Delete(recursive: true);
        }
    }
}
