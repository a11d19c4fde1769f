using System.Diagnostics;
using System.Globalization;

namespace LlmServer.Engine.Threading;

/// <summary>How much CPU the rest of the machine took while the engine decoded.</summary>
internal interface ICpuCompetition
{
    /// <summary>
    /// Cores' worth of CPU that other processes (and the hypervisor or the cgroup's throttling) took from this
    /// process's CPUs since the previous call; NaN when it cannot be measured.
    /// </summary>
    double OtherCores();
}

/// <summary>
/// Linux: the machine's busy time (<c>/proc/stat</c>, steal included) minus this process's CPU time, plus the time the
/// process's cgroup was throttled by its CPU quota. The decoding thread's own CPU share cannot tell these apart from
/// the server's other threads (streams, HTTP, the GC) competing for the same cores; dropping a decode thread only
/// helps in the first case.
/// </summary>
internal sealed class ProcCpuCompetition : ICpuCompetition
{
    private const string StatPath = "/proc/stat";
    private const string CgroupStatPath = "/sys/fs/cgroup/cpu.stat";

    private readonly double _ticksPerSecond;
    private readonly int _processors;
    private long _lastWall;
    private double _lastBusySeconds;
    private double _lastOwnSeconds;
    private double _lastThrottledSeconds;

    private ProcCpuCompetition(double ticksPerSecond, int processors)
    {
        _ticksPerSecond = ticksPerSecond;
        _processors = processors;
        Sample(out _lastBusySeconds, out _lastOwnSeconds, out _lastThrottledSeconds);
        _lastWall = Stopwatch.GetTimestamp();
    }

    /// <summary>The source for this machine, or null where <c>/proc/stat</c> is not readable.</summary>
    public static ProcCpuCompetition? TryCreate()
    {
        // USER_HZ is 100 on every Linux architecture .NET runs on.
        return OperatingSystem.IsLinux() && ReadBusyTicks() is not null ? new ProcCpuCompetition(100, Environment.ProcessorCount) : null;
    }

    public double OtherCores()
    {
        if (!Sample(out var busy, out var own, out var throttled))
        {
            return double.NaN;
        }

        var now = Stopwatch.GetTimestamp();
        var wall = Stopwatch.GetElapsedTime(_lastWall, now).TotalSeconds;
        var others = (busy - _lastBusySeconds - (own - _lastOwnSeconds)) / wall;

        // A cgroup throttled for a share of the window had that share of its CPUs taken away.
        var throttledCores = (throttled - _lastThrottledSeconds) / wall * _processors;
        _lastWall = now;
        _lastBusySeconds = busy;
        _lastOwnSeconds = own;
        _lastThrottledSeconds = throttled;
        return wall <= 0 ? double.NaN : Math.Max(0, others) + Math.Max(0, throttledCores);
    }

    private bool Sample(out double busySeconds, out double ownSeconds, out double throttledSeconds)
    {
        var ticks = ReadBusyTicks();
        busySeconds = ticks / _ticksPerSecond ?? 0;
        ownSeconds = Environment.CpuUsage.TotalTime.TotalSeconds;
        throttledSeconds = ReadThrottledSeconds();
        return ticks is not null;
    }

    /// <summary>The machine's non-idle time from the first line of <c>/proc/stat</c>, in clock ticks.</summary>
    private static long? ReadBusyTicks()
    {
        try
        {
            using var reader = new StreamReader(StatPath);
            var line = reader.ReadLine();
            if (line is null || !line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                return null;
            }

            // cpu user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy.
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long busy = 0;
            for (var i = 1; i < Math.Min(fields.Length, 9); i++)
            {
                if (i is not 4 and not 5)
                {
                    busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
                }
            }

            return busy;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return null;
        }
    }

    private static double ReadThrottledSeconds()
    {
        try
        {
            foreach (var line in File.ReadLines(CgroupStatPath))
            {
                if (line.StartsWith("throttled_usec ", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan("throttled_usec ".Length), CultureInfo.InvariantCulture) / 1e6;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            // No cgroup v2 CPU controller here: no quota throttles the process.
        }

        return 0;
    }
}
