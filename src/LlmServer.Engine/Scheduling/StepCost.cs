namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The measured cost of one decoded step: what it carried and how long it took. The scheduler hands one to every
/// <see cref="IStepObserver"/> after each step; the planner's cost estimate learns from the same figures.
/// </summary>
/// <param name="GenerationTokens">Tokens decoded for generating sequences (one per sequence).</param>
/// <param name="PromptTokens">Prompt tokens decoded.</param>
/// <param name="PromptPositions">The positions the prompt tokens attend over, summed (<see cref="PromptCost.Positions"/>).</param>
/// <param name="PromptChunks">Requests whose prompt had a chunk in the step.</param>
/// <param name="DecodeTime">Time in the backend's decode.</param>
/// <param name="StepTime">The whole step: planning, decode, sampling and publishing to streams.</param>
internal readonly record struct StepCost(int GenerationTokens, int PromptTokens, double PromptPositions, int PromptChunks, TimeSpan DecodeTime, TimeSpan StepTime);

/// <summary>Sees the cost of every decoded step, on the scheduler thread: keep it cheap and never block.</summary>
internal interface IStepObserver
{
    void OnStep(in StepCost cost);
}
