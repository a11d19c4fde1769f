using System.Diagnostics.Metrics;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Threading;

/// <summary>The CPU-thread gauges on the engine's meter (<c>llmserver_decode_threads</c>, ...).</summary>
internal sealed class ThreadingMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;

    public ThreadingMetrics(Func<CpuThreading?> threading, IMeterFactory? meterFactory)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(SchedulerMetrics.MeterName) ?? new Meter(SchedulerMetrics.MeterName);
        _meter.CreateObservableGauge("llmserver.decode_threads", () => Observe(threading(), t => t.CurrentThreads), description: "Threads decoding now (auto adapts them to the CPU the process gets).");
        _meter.CreateObservableGauge("llmserver.decode_threads_max", () => Observe(threading(), t => t.Threads), description: "Decode threads chosen at start.");
        _meter.CreateObservableGauge("llmserver.batch_threads", () => Observe(threading(), t => t.BatchThreads), description: "Prompt-processing threads.");
        _meter.CreateObservableGauge("llmserver.decode_thread_cpu_share", () => ObserveShare(threading()), description: "The decoding thread's share of a CPU over the last window (1 = it never waited for a core).");
        _meter.CreateObservableCounter("llmserver.decode_thread_changes", () => Observe(threading(), t => t.Changes), description: "Times the adaptive engine changed its decode threads.");
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private static IEnumerable<Measurement<long>> Observe(CpuThreading? threading, Func<CpuThreading, long> value) =>
        threading is null ? [] : [new Measurement<long>(value(threading))];

    private static IEnumerable<Measurement<double>> ObserveShare(CpuThreading? threading) =>
        threading is null || !threading.Adaptive ? [] : [new Measurement<double>(threading.CpuShare)];
}
