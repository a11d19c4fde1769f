namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The scheduler's estimate of what a step costs, learnt from its own measured steps (exponentially weighted, so it
/// follows the model, the machine's load and the chunk sizes actually in use): the time of a step that only
/// generates, by how many sequences generate, and the extra time per prompt token on top of that.
/// </summary>
internal sealed class StepCostModel(int slots) : IStepObserver
{
    // Weight of the newest step: about the last ten steps count.
    private const double Smoothing = 0.2;

    private readonly double[] _generationMs = Enumerable.Repeat(double.NaN, slots + 1).ToArray();
    private double _perGenerationTokenMs = double.NaN;

    // The prompt cost is a ratio of smoothed sums, so a step with many prompt tokens weighs more than one with few.
    private double _promptMs = double.NaN;
    private double _promptTokens = double.NaN;

    /// <summary>Milliseconds per prompt token on top of the generation in the same step; NaN until a prompt was seen.</summary>
    public double PromptTokenMs => _promptMs / _promptTokens;

    public void OnStep(in StepCost cost)
    {
        var ms = cost.StepTime.TotalMilliseconds;
        var generating = Math.Min(cost.GenerationTokens, _generationMs.Length - 1);
        if (cost.PromptTokens == 0)
        {
            if (generating > 0)
            {
                _generationMs[generating] = Blend(_generationMs[generating], ms);
                _perGenerationTokenMs = Blend(_perGenerationTokenMs, ms / generating);
            }

            return;
        }

        var generation = GenerationMs(generating);
        _promptMs = Blend(_promptMs, Math.Max(0, ms - (double.IsNaN(generation) ? 0 : generation)));
        _promptTokens = Blend(_promptTokens, cost.PromptTokens);
    }

    /// <summary>The time of a step in which <paramref name="generating"/> sequences only generate; NaN if unknown.</summary>
    public double GenerationMs(int generating)
    {
        if (generating == 0)
        {
            return 0;
        }

        var known = _generationMs[Math.Min(generating, _generationMs.Length - 1)];
        return double.IsNaN(known) ? _perGenerationTokenMs * generating : known;
    }

    /// <summary>
    /// Prompt tokens that fit beside <paramref name="generating"/> generating sequences in a step of
    /// <paramref name="targetMs"/>; null while the cost of a prompt token is unknown.
    /// </summary>
    public int? PromptTokensWithin(double targetMs, int generating)
    {
        var perToken = PromptTokenMs;
        if (double.IsNaN(perToken))
        {
            return null;
        }

        var generation = GenerationMs(generating);
        var room = targetMs - (double.IsNaN(generation) ? 0 : generation);
        if (room <= 0)
        {
            return 0;
        }

        return perToken <= 0 ? int.MaxValue : (int)Math.Min(int.MaxValue, room / perToken);
    }

    private static double Blend(double current, double sample) =>
        double.IsNaN(current) ? sample : current + (Smoothing * (sample - current));
}
