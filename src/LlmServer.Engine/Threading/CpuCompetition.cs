using System.Globalization;

namespace LlmServer.Engine.Threading;

/// <summary>How much CPU the rest of the machine took while the engine decoded.</summary>
internal interface ICpuCompetition
{
    /// <summary>
    /// Cores' worth of CPU that other processes (or the hypervisor, or the cgroup's quota) took from this process's
    /// CPUs since the previous call; NaN when it cannot be measured.
    /// </summary>
    double OtherCores();
}

/// <summary>One reading of the counters behind <see cref="CpuCompetition"/>, in seconds since an arbitrary origin.</summary>
/// <param name="Busy">Non-idle time of the CPUs this process may run on (steal included).</param>
/// <param name="Own">This process's CPU time.</param>
/// <param name="Throttled">Time the process's cgroup was throttled, summed over CPUs.</param>
/// <param name="HasQuota">The cgroup has a CPU quota: the CPUs' busy time then belongs to a host this process shares only through the quota.</param>
internal readonly record struct CpuReading(double Busy, double Own, double Throttled, bool HasQuota);

/// <summary>
/// The CPU that other processes took, from successive <see cref="CpuReading"/>s: the busy time of this process's CPUs
/// minus its own, or, under a cgroup quota, the time the quota throttled it. The decoding thread's own CPU share cannot
/// tell these apart from the server's other threads (streams, HTTP, the GC) competing for the same cores; dropping a
/// decode thread only helps in the first case.
/// </summary>
internal sealed class CpuCompetition : ICpuCompetition
{
    private readonly Func<CpuReading?> _read;
    private readonly TimeProvider _time;
    private readonly int _processors;
    private CpuReading? _last;
    private long _lastAt;

    public CpuCompetition(Func<CpuReading?> read, TimeProvider time, int processors)
    {
        _read = read;
        _time = time;
        _processors = processors;
        _last = read();
        _lastAt = time.GetTimestamp();
    }

    /// <summary>The source for this machine (Linux <c>/proc</c> and cgroup v2), or null where <c>/proc/stat</c> is not readable.</summary>
    public static CpuCompetition? ForThisProcess(TimeProvider time) =>
        ProcCpuReader.TryCreate() is { } reader ? new CpuCompetition(reader.Read, time, Environment.ProcessorCount) : null;

    public double OtherCores()
    {
        var reading = _read();
        var now = _time.GetTimestamp();
        var wall = _time.GetElapsedTime(_lastAt, now).TotalSeconds;
        var last = _last;
        _last = reading;
        _lastAt = now;
        if (reading is not { } current || last is not { } previous || wall <= 0)
        {
            return double.NaN;
        }

        // Under a quota the host's busy CPUs say nothing about this process's share; its throttling does.
        var others = current.HasQuota
            ? (current.Throttled - previous.Throttled) / wall
            : (current.Busy - previous.Busy - (current.Own - previous.Own)) / wall;
        return Math.Clamp(others, 0, _processors);
    }
}

/// <summary>Reads <see cref="CpuReading"/>s from Linux's <c>/proc</c> and the process's cgroup v2 directory.</summary>
internal sealed class ProcCpuReader
{
    // USER_HZ is 100 on every Linux architecture .NET runs on.
    private const double TicksPerSecond = 100;

    private readonly HashSet<int>? _cpus;
    private readonly string? _cgroup;

    private ProcCpuReader(HashSet<int>? cpus, string? cgroup)
    {
        _cpus = cpus;
        _cgroup = cgroup;
    }

    public static ProcCpuReader? TryCreate()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var reader = new ProcCpuReader(AllowedCpus(), CgroupDirectory());
        return reader.Read() is null ? null : reader;
    }

    public CpuReading? Read()
    {
        var busy = BusyTicks();
        if (busy is null)
        {
            return null;
        }

        var (throttled, quota) = CgroupCpu();
        return new CpuReading(busy.Value / TicksPerSecond, Environment.CpuUsage.TotalTime.TotalSeconds, throttled, quota);
    }

    /// <summary>Non-idle ticks of the allowed CPUs (<c>cpuN</c> lines of <c>/proc/stat</c>: all but idle and iowait).</summary>
    private long? BusyTicks()
    {
        try
        {
            long busy = 0;
            var seen = false;
            foreach (var line in File.ReadLines("/proc/stat"))
            {
                if (!line.StartsWith("cpu", StringComparison.Ordinal))
                {
                    break;
                }

                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields[0].Length == 3 || (_cpus is not null && !_cpus.Contains(int.Parse(fields[0].AsSpan(3), CultureInfo.InvariantCulture))))
                {
                    continue;
                }

                for (var i = 1; i < Math.Min(fields.Length, 9); i++)
                {
                    if (i is not 4 and not 5)
                    {
                        busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
                    }
                }

                seen = true;
            }

            return seen ? busy : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    private (double ThrottledSeconds, bool HasQuota) CgroupCpu()
    {
        if (_cgroup is null)
        {
            return (0, false);
        }

        try
        {
            var quota = File.Exists(Path.Combine(_cgroup, "cpu.max"))
                && !File.ReadAllText(Path.Combine(_cgroup, "cpu.max")).StartsWith("max", StringComparison.Ordinal);
            foreach (var line in File.ReadLines(Path.Combine(_cgroup, "cpu.stat")))
            {
                if (line.StartsWith("throttled_usec ", StringComparison.Ordinal))
                {
                    return (long.Parse(line.AsSpan("throttled_usec ".Length), CultureInfo.InvariantCulture) / 1e6, quota);
                }
            }

            return (0, quota);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            // No cgroup v2 CPU controller here: no quota throttles the process.
            return (0, false);
        }
    }

    /// <summary>The CPUs of this process's affinity (<c>Cpus_allowed_list</c>), or null for all.</summary>
    private static HashSet<int>? AllowedCpus()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
            if (line is null)
            {
                return null;
            }

            var cpus = new HashSet<int>();
            foreach (var range in line["Cpus_allowed_list:".Length..].Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                var bounds = range.Split('-');
                var first = int.Parse(bounds[0], CultureInfo.InvariantCulture);
                var last = bounds.Length > 1 ? int.Parse(bounds[1], CultureInfo.InvariantCulture) : first;
                for (var cpu = first; cpu <= last; cpu++)
                {
                    cpus.Add(cpu);
                }
            }

            return cpus;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return null;
        }
    }

    /// <summary>The process's cgroup v2 directory (<c>0::/path</c> in <c>/proc/self/cgroup</c>), or null without one.</summary>
    private static string? CgroupDirectory()
    {
        try
        {
            var line = File.ReadLines("/proc/self/cgroup").FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal));
            return line is null ? null : Path.Join("/sys/fs/cgroup", line[3..]);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
