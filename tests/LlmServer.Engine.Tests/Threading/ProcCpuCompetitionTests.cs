using System.Diagnostics;
using LlmServer.Engine.Threading;

namespace LlmServer.Engine.Tests.Threading;

public sealed class ProcCpuCompetitionTests
{
    [Fact]
    public async Task A_busy_process_beside_this_one_shows_as_competition()
    {
        Assert.True(OperatingSystem.IsLinux(), "The CPU-competition source reads Linux's /proc; the tests run on Linux.");
        var competition = ProcCpuCompetition.TryCreate();
        Assert.NotNull(competition);

        using var busy = Process.Start(new ProcessStartInfo("sh", ["-c", "while :; do :; done"]))!;
        try
        {
            // Each reading covers the time since the previous one: wait until one covers the busy loop's running.
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var others = competition.OtherCores();
            while (!(others >= 0.5))
            {
                await Task.Delay(200, deadline.Token);
                others = competition.OtherCores();
            }

            Assert.InRange(others, 0.5, Environment.ProcessorCount + 0.5);
        }
        finally
        {
            busy.Kill();
            await busy.WaitForExitAsync();
        }
    }
}
