namespace LlmServer.Engine.Threading;

/// <summary>
/// Adapts the number of decode threads to the CPU the process actually gets. The signal is how much of a decode's
/// wall time the decoding thread spent on a CPU: on a machine with a core per thread that is nearly all of it; when
/// other processes compete, llama.cpp's threads wait for each other at every barrier and the share falls (a step
/// inflates to several scheduler time slices). Two contended windows in a row drop a thread; after a calm stretch
/// one thread is added back as a probe, kept when the next window is calm, dropped again at once otherwise, with the
/// calm stretch before the next probe doubling each time a probe fails (hysteresis both ways).
/// Deterministic: it sees only the times it is given.
/// </summary>
internal sealed class DecodeThreadGovernor
{
    private readonly GovernorSettings _settings;
    private long _windowWall;
    private long _windowCpu;
    private int _contendedStreak;
    private long _calmWall;
    private long _probeAfter;
    private bool _probing;

    public DecodeThreadGovernor(int maxThreads, int startThreads, GovernorSettings settings)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        MaxThreads = maxThreads;
        Threads = Math.Clamp(startThreads, 1, maxThreads);
        _settings = settings;
        _probeAfter = settings.FirstProbeAfter;
    }

    public int MaxThreads { get; }

    /// <summary>The threads the next decode should use.</summary>
    public int Threads { get; private set; }

    /// <summary>The decoding thread's share of the CPU in the last complete window (1 = never waited).</summary>
    public double LastCpuShare { get; private set; } = 1;

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
        var contended = LastCpuShare < _settings.ContendedShare;

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
            _calmWall += length;
            if (_calmWall >= _probeAfter)
            {
                _calmWall = 0;
                _probing = true;
                return Set(Threads + 1);
            }
        }

        return false;
    }

    private bool Set(int threads)
    {
        Threads = threads;
        Changes++;
        return true;
    }
}

/// <summary>The governor's thresholds; times in <see cref="TimeSpan"/> ticks of step wall time.</summary>
internal sealed record GovernorSettings(
    long Window,
    double ContendedShare,
    double CalmShare,
    int ContendedWindowsToDrop,
    long FirstProbeAfter,
    long LongestProbeInterval)
{
    /// <summary>Quarter-second windows; a thread goes after half a second below 60%; probes after 4 s, then up to 64 s.</summary>
    public static GovernorSettings Default { get; } = new(
        TimeSpan.TicksPerSecond / 4,
        0.6,
        0.85,
        2,
        TimeSpan.TicksPerSecond * 4,
        TimeSpan.TicksPerSecond * 64);
}
