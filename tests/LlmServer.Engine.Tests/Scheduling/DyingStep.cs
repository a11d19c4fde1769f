using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// A step observer that kills the scheduler's loop at its first decoding step: at once, or once <paramref name="die"/>
/// completes (holding the loop till then, so a test can act while a request is running).
/// </summary>
internal sealed class DyingStep(Task? die = null) : IStepObserver
{
    public void OnStep(in StepCost cost)
    {
        die?.GetAwaiter().GetResult();
        throw new InvalidOperationException("Injected: the step failed.");
    }
}
