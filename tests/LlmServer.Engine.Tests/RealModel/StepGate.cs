using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>
/// A step observer that holds the scheduler thread after a step while closed, so a test can keep a generation
/// running (not finished, its slot taken) for as long as it needs, however fast the model writes.
/// </summary>
internal sealed class StepGate : IStepObserver
{
    private readonly object _lock = new();
    private bool _closed;
    private int _allowance;

    /// <summary>Lets <paramref name="steps"/> more steps end, then holds the scheduler after the next ones until <see cref="Open"/>.</summary>
    public void CloseAfter(int steps)
    {
        lock (_lock)
        {
            _closed = true;
            _allowance = steps;
        }
    }

    public void Open()
    {
        lock (_lock)
        {
            _closed = false;
            Monitor.PulseAll(_lock);
        }
    }

    public void OnStep(in StepCost cost)
    {
        lock (_lock)
        {
            if (_closed && _allowance > 0)
            {
                _allowance--;
                return;
            }

            while (_closed)
            {
                Monitor.Wait(_lock);
            }
        }
    }
}
