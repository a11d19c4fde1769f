namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The scheduler's estimate of what a step costs, learnt from its own measured steps (exponentially weighted, so it
/// follows the model, the machine's load and the chunk sizes actually in use): the time of a step that only
/// generates, by how many sequences generate, and on top of that, what prompt tokens add: a fixed part for a step
/// that carries any (on a CPU, a small chunk deep in a long prompt costs several times its share of a large one) and a
/// part per token, fitted as a line through the recent steps' prompt sizes and times.
/// </summary>
internal sealed class StepCostModel(int slots) : IStepObserver
{
    // Weight of the newest step for generation times: about the last ten steps count.
    private const double Smoothing = 0.2;

    // The prompt line needs a spread of chunk sizes to tell the fixed part from the per-token part: a longer memory.
    private const double PromptSmoothing = 0.05;

    // Below this spread of recent chunk sizes (in tokens, one standard deviation) a new line is not fitted: the last
    // one fitted stands (the planner settles on one chunk size, so the spread fades in steady state), or before any,
    // the cost is taken as proportional to the tokens.
    private const double MinPromptSpread = 4;

    private readonly double[] _generationMs = Enumerable.Repeat(double.NaN, slots + 1).ToArray();
    private double _perGenerationTokenMs = double.NaN;

    // Exponentially weighted sums over steps with prompt tokens: weight, tokens, extra ms, tokens², tokens × ms.
    private double _w;
    private double _x;
    private double _y;
    private double _xx;
    private double _xy;
    private (double PerToken, double Fixed)? _fitted;

    public void OnStep(in StepCost cost)
    {
        var ms = cost.StepTime.TotalMilliseconds;
        var generating = Math.Min(cost.GenerationTokens, _generationMs.Length - 1);
        if (cost.PromptTokens == 0)
        {
            if (generating > 0)
            {
                _generationMs[generating] = Blend(_generationMs[generating], ms, Smoothing);
                _perGenerationTokenMs = Blend(_perGenerationTokenMs, ms / generating, Smoothing);
            }

            return;
        }

        var extra = Math.Max(0, ms - Known(GenerationMs(generating)));
        double tokens = cost.PromptTokens;
        var keep = _w == 0 ? 0 : 1 - PromptSmoothing;
        _w = (keep * _w) + 1;
        _x = (keep * _x) + tokens;
        _y = (keep * _y) + extra;
        _xx = (keep * _xx) + (tokens * tokens);
        _xy = (keep * _xy) + (tokens * extra);
        Refit();
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
        var (perToken, fixedMs) = Line();
        if (double.IsNaN(perToken))
        {
            return null;
        }

        var room = targetMs - Known(GenerationMs(generating)) - fixedMs;
        if (room <= 0)
        {
            return 0;
        }

        return perToken <= 0 ? int.MaxValue : (int)Math.Min(int.MaxValue, room / perToken);
    }

    /// <summary>
    /// The fewest prompt tokens whose own per-token time is at least <paramref name="share"/> of a step beside
    /// <paramref name="generating"/> generating sequences (the rest being the generation and the fixed prompt part);
    /// null while the cost of a prompt token is unknown, 0 when <paramref name="share"/> is 0.
    /// </summary>
    public int? PromptTokensForShare(double share, int generating)
    {
        var (perToken, fixedMs) = Line();
        if (double.IsNaN(perToken))
        {
            return null;
        }

        if (share <= 0 || perToken <= 0)
        {
            return 0;
        }

        var overhead = Known(GenerationMs(generating)) + fixedMs;
        return (int)Math.Min(int.MaxValue, Math.Ceiling(share / (1 - share) * overhead / perToken));
    }

    /// <summary>The prompt cost: per token and fixed per step; NaN per token until a prompt was seen.</summary>
    private (double PerToken, double Fixed) Line() =>
        _w == 0 || _x <= 0 ? (double.NaN, 0) : _fitted ?? (_y / _x, 0);

    /// <summary>Fits the line again where the recent chunk sizes spread enough to tell its two parts apart.</summary>
    private void Refit()
    {
        var meanX = _x / _w;
        var variance = (_xx / _w) - (meanX * meanX);
        if (variance < MinPromptSpread * MinPromptSpread)
        {
            return;
        }

        var slope = ((_xy / _w) - (meanX * (_y / _w))) / variance;
        var intercept = (_y / _w) - (slope * meanX);

        // A line that says prompt tokens are free or that a chunk saves time fits noise, not cost.
        _fitted = slope > 0 && intercept >= 0 ? (slope, intercept) : null;
    }

    private static double Known(double ms) => double.IsNaN(ms) ? 0 : ms;

    private static double Blend(double current, double sample, double weight) =>
        double.IsNaN(current) ? sample : current + (weight * (sample - current));
}
