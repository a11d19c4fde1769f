using System.Globalization;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Threading;

/// <summary>
/// How the engine runs llama.cpp's CPU threads: the counts chosen at start (and why), libgomp's wait setting, and,
/// when adaptive, the decode threads in force now. One instance per engine; <see cref="CurrentThreads"/> changes at
/// run time, the rest is fixed at start.
/// </summary>
public sealed class CpuThreading
{
    private volatile int _currentThreads;
    private long _changes;
    private double _cpuShare = 1;
    private double _otherCores = double.NaN;

    internal CpuThreading(int threads, int batchThreads, bool adaptive, string threadsSetting, string batchThreadsSetting, string openMp, string reason)
    {
        Threads = threads;
        BatchThreads = batchThreads;
        Adaptive = adaptive;
        ThreadsSetting = threadsSetting;
        BatchThreadsSetting = batchThreadsSetting;
        OpenMp = openMp;
        Reason = reason;
        _currentThreads = threads;
    }

    /// <summary>Decode threads chosen at start (the most an adaptive engine uses).</summary>
    public int Threads { get; }

    /// <summary>Prompt-processing threads chosen at start.</summary>
    public int BatchThreads { get; }

    /// <summary>True when the decode threads follow the CPU the process gets (<c>Model:Threads</c> is <c>auto</c>).</summary>
    public bool Adaptive { get; }

    /// <summary>The configured <c>Model:Threads</c> (<c>auto</c> or a number).</summary>
    public string ThreadsSetting { get; }

    /// <summary>The configured <c>Model:BatchThreads</c>.</summary>
    public string BatchThreadsSetting { get; }

    /// <summary>Prompt threads are automatic: they follow the decode threads down while the CPUs are contended.</summary>
    internal bool BatchThreadsFollow => Adaptive && BatchThreadsSetting == ThreadSetting.Auto.ToString();

    /// <summary>libgomp's wait setting in force and where it came from.</summary>
    public string OpenMp { get; }

    /// <summary>Why these counts were chosen, in a sentence.</summary>
    public string Reason { get; }

    /// <summary>Decode threads in force now.</summary>
    public int CurrentThreads => _currentThreads;

    /// <summary>How often the adaptive engine changed its decode threads.</summary>
    public long Changes => Interlocked.Read(ref _changes);

    /// <summary>The decode thread's share of the CPU over the last measured window (1 = it never waited for a core).</summary>
    public double CpuShare => Volatile.Read(ref _cpuShare);

    /// <summary>Cores other processes took over the last measured window; NaN when unknown or not adaptive.</summary>
    public double OtherProcessesCores => Volatile.Read(ref _otherCores);

    internal void Record(int currentThreads, long changes, double cpuShare, double otherCores)
    {
        _currentThreads = currentThreads;
        Interlocked.Exchange(ref _changes, changes);
        Volatile.Write(ref _cpuShare, cpuShare);
        Volatile.Write(ref _otherCores, otherCores);
    }

    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"threads {Threads} (Model:Threads {ThreadsSetting}{(Adaptive ? ", adaptive" : string.Empty)}), batch threads {BatchThreads} (Model:BatchThreads {BatchThreadsSetting}), {OpenMp}: {Reason}");
}

/// <summary>Turns <c>Model:Threads</c> and <c>Model:BatchThreads</c> into counts; <c>auto</c> decides from the machine and the model.</summary>
internal static class CpuThreadPlanner
{
    /// <summary>
    /// Below this file size one thread decodes faster than two: a token's work is a few microseconds per matrix, less
    /// than the barriers between the threads cost (stories260K, 1 MB: measured, see README "CPU threads").
    /// </summary>
    public const long SingleThreadModelBytes = 8L * 1024 * 1024;

    public static CpuThreading Resolve(ThreadSetting threads, ThreadSetting batchThreads, int processors, long modelBytes, string openMp)
    {
        processors = Math.Max(1, processors);
        var tiny = modelBytes is > 0 and < SingleThreadModelBytes;
        int decode;
        string reason;
        if (!threads.IsAuto)
        {
            decode = threads.Count;
            reason = "decode threads as configured";
        }
        else if (tiny)
        {
            decode = 1;
            reason = string.Create(CultureInfo.InvariantCulture, $"the model is {modelBytes / 1024} KiB: a second decode thread would only add synchronisation");
        }
        else
        {
            decode = processors;
            reason = string.Create(CultureInfo.InvariantCulture, $"one decode thread per available CPU ({processors}), fewer while other processes compete for them");
        }

        var batch = batchThreads.IsAuto ? processors : batchThreads.Count;
        return new CpuThreading(decode, batch, threads.IsAuto && !tiny && decode > 1, threads.ToString(), batchThreads.ToString(), openMp, reason);
    }
}

/// <summary>
/// The decode side of adaptive threading: after each step it compares the step's wall time with the CPU time the
/// scheduler thread got since the previous step, feeds the governor, and applies its count to the context before
/// the next decode. Runs on the scheduler thread (the context's owner) only.
/// </summary>
internal sealed class DecodeThreadController : IStepObserver
{
    private readonly TimeProvider _time;
    private DecodeThreadGovernor? _governor;
    private CpuThreading? _threading;
    private Action<int>? _apply;
    private TimeSpan _lastCpu;

    public DecodeThreadController(TimeProvider time)
    {
        _time = time;
    }

    public bool IsAdaptive => _governor is not null;

    /// <summary>Starts governing; call on the scheduler thread once the context exists, before its first step.</summary>
    public void Attach(CpuThreading threading, Action<int> apply)
    {
        _threading = threading;
        _apply = apply;
        _governor = threading.Adaptive && ThreadCpuClock.IsSupported
            ? new DecodeThreadGovernor(threading.Threads, threading.Threads, GovernorSettings.Default, CpuCompetition.ForThisProcess(_time), Environment.ProcessorCount)
            : null;
        _lastCpu = ThreadCpuClock.Now();
    }

    public void OnStep(in StepCost cost)
    {
        if (_governor is not { } governor)
        {
            return;
        }

        // The CPU since the previous step includes this step's planning, which is outside StepTime: the share
        // errs high, never towards dropping a thread the step did not lose.
        var cpu = ThreadCpuClock.Now();
        var used = cpu - _lastCpu;
        _lastCpu = cpu;
        var changed = governor.Observe(cost.StepTime.Ticks, used.Ticks);
        _threading!.Record(governor.Threads, governor.Changes, governor.LastCpuShare, governor.LastOtherCores);
        if (changed)
        {
            _apply!(governor.Threads);
        }
    }
}
