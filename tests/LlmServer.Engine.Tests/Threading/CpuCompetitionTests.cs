using System.Diagnostics;
using LlmServer.Engine.Threading;
using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Engine.Tests.Threading;

public sealed class CpuCompetitionTests
{
    [Fact]
    public void Other_processes_take_the_busy_time_of_our_cpus_that_is_not_ours()
    {
        var readings = new Queue<CpuReading?>([new CpuReading(10, 4, 0, false), new CpuReading(11.5, 4.4, 0, false)]);
        var clock = new FakeTimeProvider();
        var competition = new CpuCompetition(readings.Dequeue, clock, processors: 2);

        // One second: the CPUs were busy 1.5 s, 0.4 s of it this process.
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1.1, competition.OtherCores(), 6);
    }

    [Fact]
    public void Under_a_cgroup_quota_only_the_throttled_time_counts_and_never_more_than_our_cpus()
    {
        // The host's CPUs are busy with other tenants: that says nothing about this process's quota.
        var readings = new Queue<CpuReading?>(
            [new CpuReading(0, 0, 1, true), new CpuReading(50, 0.5, 1.25, true), new CpuReading(100, 1, 9, true)]);
        var clock = new FakeTimeProvider();
        var competition = new CpuCompetition(readings.Dequeue, clock, processors: 2);

        clock.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(0.5, competition.OtherCores(), 6);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, competition.OtherCores(), 6);
    }

    [Fact]
    public void A_reading_that_fails_gives_no_figure_and_the_next_one_starts_afresh()
    {
        var readings = new Queue<CpuReading?>([new CpuReading(0, 0, 0, false), null, new CpuReading(5, 1, 0, false), new CpuReading(6, 1, 0, false)]);
        var clock = new FakeTimeProvider();
        var competition = new CpuCompetition(readings.Dequeue, clock, processors: 4);

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(double.IsNaN(competition.OtherCores()));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(double.IsNaN(competition.OtherCores()));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, competition.OtherCores(), 6);
    }

    [Fact]
    public async Task On_linux_a_busy_process_beside_this_one_shows_as_competition()
    {
        Assert.True(OperatingSystem.IsLinux(), "The CPU-competition source reads Linux's /proc; the tests run on Linux.");
        var competition = CpuCompetition.ForThisProcess(TimeProvider.System);
        Assert.NotNull(competition);

        using var busy = Process.Start(new ProcessStartInfo("sh", ["-c", "while :; do :; done"]))!;
        try
        {
            // The first reading covers the process start; the next ones the busy loop's running. Wait for one that shows it.
            competition.OtherCores();
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            double others;
            do
            {
                // Competition is CPU time sampled from /proc between readings: only a later reading can show the busy process.
                await Task.Delay(250, deadline.Token);
                others = competition.OtherCores();
            }
            while (!(others >= 0.5));

            Assert.InRange(others, 0.5, Environment.ProcessorCount);
        }
        finally
        {
            busy.Kill();
            await busy.WaitForExitAsync();
        }
    }
}
