namespace LlmServer.Engine.Threading;

/// <summary>
/// Adapts the number of decode threads to the CPU the process actually gets. The signal is how much of a decode's
/// wall time the decoding thread spent on a CPU: on a machine with a core per thread that is nearly all of it; when
/// other processes compete, llama.cpp's threads wait for each other at every barrier and the share falls (a step
/// inflates to several scheduler time slices). A low share counts only while other processes want more CPU than our
/// threads leave free (<see cref="ICpuCompetition"/>): the server's own stream and HTTP threads also take the decoding
/// thread's core for moments, and dropping a decode thread for them only slows decoding down. Two contended windows
/// in a row drop a thread; after a calm stretch with room for one more thread, one is added back as a probe, kept when
/// the next window is calm, dropped again at once otherwise, with the calm stretch before the next probe doubling each
/// time a probe fails (hysteresis both ways). Deterministic: it sees only the times and loads it is given.
/// </summary>
internal sealed class DecodeThreadGovernor
{
    private readonly GovernorSettings _settings;
    private readonly ICpuCompetition? _competition;
    private readonly int _processors;
    private long _windowWall;
    private long _windowCpu;
    private int _contendedStreak;
    private long _calmWall;
    private long _probeAfter;
    private bool _probing;

    /// <param name="competition">What other processes take; null where it cannot be measured (the share alone decides).</param>
    /// <param name="processors">The CPUs this process may use.</param>
    public DecodeThreadGovernor(int maxThreads, int startThreads, GovernorSettings settings, ICpuCompetition? competition, int processors)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        MaxThreads = maxThreads;
        Threads = Math.Clamp(startThreads, 1, maxThreads);
        _settings = settings;
        _competition = competition;
        _processors = processors;
        _probeAfter = settings.FirstProbeAfter;
    }

    public int MaxThreads { get; }

    /// <summary>The threads the next decode should use.</summary>
    public int Threads { get; private set; }

    /// <summary>The decoding thread's share of the CPU in the last complete window (1 = never waited).</summary>
    public double LastCpuShare { get; private set; } = 1;

    /// <summary>Cores other processes took over the last windows (smoothed); NaN when unknown.</summary>
    public double LastOtherCores { get; private set; } = double.NaN;

    /// <summary>How many times <see cref="Threads"/> changed.</summary>
    public long Changes { get; private set; }

    /// <summary>
    /// Takes one decode's wall time and the decoding thread's CPU time over it, in the same unit. Returns true when
    /// <see cref="Threads"/> changed (the caller applies it before the next decode).
    /// </summary>
    public bool Observe(long wall, long cpu)
    {
        if (wall <= 0)
        {
            return false;
        }

        _windowWall += wall;
        _windowCpu += Math.Clamp(cpu, 0, wall);
        if (_windowWall < _settings.Window)
        {
            return false;
        }

        LastCpuShare = (double)_windowCpu / _windowWall;
        var length = _windowWall;
        _windowWall = 0;
        _windowCpu = 0;
        // Half the weight on the newest window: a moment's burst beside the server is not a competing process.
        var sample = _competition?.OtherCores() ?? double.NaN;
        var others = double.IsNaN(LastOtherCores) || double.IsNaN(sample) ? sample : (LastOtherCores + sample) / 2;
        LastOtherCores = others;
        var contended = LastCpuShare < _settings.ContendedShare && (double.IsNaN(others) || Crowded(others, Threads));

        if (_probing)
        {
            _probing = false;
            if (contended)
            {
                _probeAfter = Math.Min(_probeAfter * 2, _settings.LongestProbeInterval);
                return Set(Threads - 1);
            }

            _probeAfter = _settings.FirstProbeAfter;
        }

        if (contended)
        {
            _calmWall = 0;
            if (++_contendedStreak >= _settings.ContendedWindowsToDrop && Threads > 1)
            {
                _contendedStreak = 0;
                return Set(Threads - 1);
            }

            return false;
        }

        _contendedStreak = 0;
        if (Threads < MaxThreads && LastCpuShare >= _settings.CalmShare)
        {
            // A probe follows a calm stretch with room for one more thread: while another process holds that core,
            // the probe would only fail.
            _calmWall = Crowded(others, Threads + 1) ? 0 : _calmWall + length;
            if (_calmWall >= _probeAfter)
            {
                _calmWall = 0;
                _probing = true;
                return Set(Threads + 1);
            }
        }

        return false;
    }

    /// <summary>Other processes want more than the cores <paramref name="threads"/> decode threads leave free.</summary>
    private bool Crowded(double others, int threads) => !double.IsNaN(others) && others + threads > _processors + _settings.SpareCores;

    private bool Set(int threads)
    {
        Threads = threads;
        Changes++;
        return true;
    }
}

/// <summary>
/// The governor's thresholds; times in <see cref="TimeSpan"/> ticks of step wall time. <paramref name="SpareCores"/>:
/// how far other processes may reach into the decode threads' cores before they count as competition. Measured on two
/// cores at 8 streams: bursts of up to 0.84 cores beside a quiet server (its load generator, monitoring), 0.94 to 1.27
/// with one busy loop; one decode thread lost against the first and won against the second.
/// </summary>
internal sealed record GovernorSettings(
    long Window,
    double ContendedShare,
    double CalmShare,
    int ContendedWindowsToDrop,
    long FirstProbeAfter,
    long LongestProbeInterval,
    double SpareCores = 0.85)
{
    /// <summary>Quarter-second windows; a thread goes after half a second below 60% with another process wanting its core; probes after 4 s, then up to 64 s.</summary>
    public static GovernorSettings Default { get; } = new(
        TimeSpan.TicksPerSecond / 4,
        0.6,
        0.85,
        2,
        TimeSpan.TicksPerSecond * 4,
        TimeSpan.TicksPerSecond * 64);
}
