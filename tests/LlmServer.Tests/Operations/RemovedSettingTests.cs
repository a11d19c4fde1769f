using System.Text;
using static LlmServer.Tests.Infrastructure.ChildServer;

namespace LlmServer.Tests.Operations;

/// <summary>A setting that no longer exists, still set, is named in a warning at start rather than ignored silently.</summary>
public sealed class RemovedSettingTests
{
    [Fact]
    public async Task Limits_generation_paths_still_set_gets_a_warning_at_start()
    {
        var folder = Directory.CreateTempSubdirectory("llmserver-removed-setting-");
        var warned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new StringBuilder();
        using var process = Start(
            FreePort(),
            log,
            line =>
            {
                if (line.Contains("Limits:GenerationPaths is no longer read", StringComparison.Ordinal))
                {
                    warned.TrySetResult();
                }
            },
            $"--Sessions:Database={Path.Combine(folder.FullName, "sessions.db")}",
            "--Limits:GenerationPaths:0=/v1/chat/completions");
        try
        {
            // Only a hang guard: the warning is written before the server listens.
            using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await warned.Task.WaitAsync(hang.Token);
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
