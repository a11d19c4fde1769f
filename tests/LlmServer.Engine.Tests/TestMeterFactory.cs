using System.Diagnostics.Metrics;

namespace LlmServer.Engine.Tests;

/// <summary>
/// Meters of one test's own (their scope is this factory): tests run in parallel, and their components' meters
/// share the engine meter's name.
/// </summary>
internal sealed class TestMeterFactory : IMeterFactory
{
    private readonly List<Meter> _meters = [];

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(options.Name, options.Version, options.Tags, scope: this);
        _meters.Add(meter);
        return meter;
    }

    public void Dispose() => _meters.ForEach(m => m.Dispose());
}
