namespace LlmServer.Engine.Scheduling;

/// <summary>
/// The scheduler's estimate of what a step costs, learnt from its own measured steps (exponentially weighted, so it
/// follows the model, the machine's load and the chunk sizes actually in use): the time of a step that only
/// generates, by how many sequences generate, and on top of that what prompt tokens add (<see cref="PromptCost"/>),
/// fitted by least squares through the recent steps' prompt sizes, depths and times.
/// </summary>
internal sealed class StepCostModel(int slots) : IStepObserver
{
    // Weight of the newest step for generation times: about the last ten steps count.
    private const double Smoothing = 0.2;

    // The prompt fit needs a spread of chunk sizes and depths to tell its parts apart: a longer memory.
    private const double PromptSmoothing = 0.05;

    // Below this spread of recent chunk sizes (in tokens, one standard deviation) a new fit is not made: the last one
    // stands (the planner settles on one chunk size, so the spread fades in steady state), or before any, the cost is
    // taken as proportional to the tokens.
    private const double MinPromptSpread = 4;

    // The depth term is fitted only where chunk sizes and depths vary apart from each other (their correlation²
    // below this), and kept only where it leaves clearly less unexplained time than the line without it.
    private const double MaxSizeDepthCorrelation = 0.98;
    private const double MinDepthGain = 0.2;

    private readonly double[] _generationMs = Enumerable.Repeat(double.NaN, slots + 1).ToArray();
    private double _perGenerationTokenMs = double.NaN;

    // Exponentially weighted sums over steps with prompt tokens, of t (tokens), p (thousands of positions attended
    // over) and y (ms beyond the generation), and of their products.
    private double _w;
    private double _t;
    private double _p;
    private double _y;
    private double _tt;
    private double _tp;
    private double _pp;
    private double _ty;
    private double _py;
    private double _yy;
    private PromptCost? _fitted;

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

        var y = Math.Max(0, ms - KnownGenerationMs(generating));
        double t = cost.PromptTokens;
        var p = cost.PromptPositions / 1000;
        var keep = _w == 0 ? 0 : 1 - PromptSmoothing;
        _w = (keep * _w) + 1;
        _t = (keep * _t) + t;
        _p = (keep * _p) + p;
        _y = (keep * _y) + y;
        _tt = (keep * _tt) + (t * t);
        _tp = (keep * _tp) + (t * p);
        _pp = (keep * _pp) + (p * p);
        _ty = (keep * _ty) + (t * y);
        _py = (keep * _py) + (p * y);
        _yy = (keep * _yy) + (y * y);
        Refit();
    }

    /// <summary>The time of a step in which <paramref name="generating"/> sequences only generate; 0 while unknown.</summary>
    public double KnownGenerationMs(int generating)
    {
        if (generating == 0)
        {
            return 0;
        }

        var known = _generationMs[Math.Min(generating, _generationMs.Length - 1)];
        var ms = double.IsNaN(known) ? _perGenerationTokenMs * generating : known;
        return double.IsNaN(ms) ? 0 : ms;
    }

    /// <summary>What prompt tokens add to a step; null until a step with prompt tokens was seen.</summary>
    public PromptCost? Prompt => _w == 0 || _t <= 0 ? null : _fitted ?? new PromptCost(0, _y / _t, 0);

    /// <summary>
    /// Fits again where the recent steps spread enough to tell the parts apart: with the depth term where it explains
    /// the times clearly better, else a line in the tokens alone; a fit that says tokens are free or that a chunk saves
    /// time fits noise, not cost, and is not taken.
    /// </summary>
    private void Refit()
    {
        var (mt, mp, my) = (_t / _w, _p / _w, _y / _w);
        var vt = (_tt / _w) - (mt * mt);
        if (vt < MinPromptSpread * MinPromptSpread)
        {
            return;
        }

        var vp = (_pp / _w) - (mp * mp);
        var vy = (_yy / _w) - (my * my);
        var ctp = (_tp / _w) - (mt * mp);
        var cty = (_ty / _w) - (mt * my);
        var cpy = (_py / _w) - (mp * my);

        var slope = cty / vt;
        var line = new PromptCost(NoiseFloor(my - (slope * mt)), slope, 0);
        var lineError = vy - (slope * cty);

        var det = (vt * vp) - (ctp * ctp);
        if (vp <= 0 || ctp * ctp >= MaxSizeDepthCorrelation * vt * vp)
        {
            // The recent sizes and depths cannot tell the depth term from the per-token one: the depth term of a fit
            // made when they could is held, and the other parts follow the recent steps (a machine that got busier).
            var refit = _fitted is { PerKiloPositionMs: > 0 } depth && WithDepthHeld(depth.PerKiloPositionMs, mt, mp, my, vt, ctp, cty) is { IsPlausible: true } held
                ? held
                : line;
            _fitted = refit.IsPlausible ? WithFixedAtMost(refit, FixedCap()) : null;
        }
        else
        {
            var perToken = ((cty * vp) - (cpy * ctp)) / det;
            var perKiloPosition = ((cpy * vt) - (cty * ctp)) / det;
            var deep = new PromptCost(NoiseFloor(my - (perToken * mt) - (perKiloPosition * mp)), perToken, perKiloPosition);
            var deepError = vy - (perToken * cty) - (perKiloPosition * cpy);
            _fitted = deep.IsPlausible && deepError < (1 - MinDepthGain) * lineError ? WithFixedAtMost(deep, FixedCap())
                : line.IsPlausible ? WithFixedAtMost(line, FixedCap())
                : null;
        }
    }

    /// <summary>The line through the recent steps' times less what <paramref name="perKiloPositionMs"/> puts on their depth.</summary>
    private static PromptCost WithDepthHeld(double perKiloPositionMs, double mt, double mp, double my, double vt, double ctp, double cty)
    {
        var perToken = (cty - (perKiloPositionMs * ctp)) / vt;
        return new PromptCost(NoiseFloor(my - (perKiloPositionMs * mp) - (perToken * mt)), perToken, perKiloPositionMs);
    }

    /// <summary>
    /// What a chunk's own micro-batch can cost at most: the quickest step measured that only generates (one micro-batch
    /// of at least one token, with the step's overhead); unbounded until one was measured.
    /// </summary>
    private double FixedCap()
    {
        var cap = double.PositiveInfinity;
        foreach (var ms in _generationMs)
        {
            cap = ms < cap ? ms : cap;
        }

        return cap;
    }

    /// <summary>
    /// <paramref name="fit"/>, or where its fixed part is beyond <paramref name="cap"/>, the fit again with the fixed
    /// part held at the cap. Steps as noisy as a busy CPU's, with chunk sizes that hardly spread, can put most of their
    /// time in the fixed part; the share rule would then stretch every step to several times the generation's time.
    /// </summary>
    private PromptCost? WithFixedAtMost(PromptCost fit, double cap)
    {
        if (fit.FixedMs <= cap)
        {
            return fit;
        }

        var (t, p, tt, tp, pp) = (_t / _w, _p / _w, _tt / _w, _tp / _w, _pp / _w);
        var (ty, py) = ((_ty / _w) - (cap * t), (_py / _w) - (cap * p));
        if (fit.PerKiloPositionMs > 0)
        {
            var det = (tt * pp) - (tp * tp);
            var deep = new PromptCost(cap, ((ty * pp) - (py * tp)) / det, ((py * tt) - (ty * tp)) / det);
            if (det > 0 && deep.IsPlausible)
            {
                return deep;
            }
        }

        var line = new PromptCost(cap, ty / tt, 0);
        return line.IsPlausible ? line : null;
    }

    // A fixed part within half a millisecond below zero is rounding and timer noise around none.
    private static double NoiseFloor(double fixedMs) => fixedMs is < 0 and > -0.5 ? 0 : fixedMs;

    private static double Blend(double current, double sample, double weight) =>
        double.IsNaN(current) ? sample : current + (weight * (sample - current));
}

/// <summary>
/// What prompt tokens add to a step's time: a fixed part for a step that carries any (on a CPU, a chunk is a micro-batch
/// of its own), a part per token (the weights' work) and a part per position each token attends over (attention: deep
/// in a long prompt a token costs several times what it costs near the start).
/// </summary>
internal readonly record struct PromptCost(double FixedMs, double PerTokenMs, double PerKiloPositionMs)
{
    public bool IsPlausible => PerTokenMs > 0 && FixedMs >= 0 && PerKiloPositionMs >= 0;

    /// <summary>The time of <paramref name="count"/> prompt tokens decoded from position <paramref name="start"/>, fixed part aside.</summary>
    public double TokensMs(int start, int count) => (count * PerTokenMs) + (PerKiloPositionMs * Positions(start, count) / 1000);

    /// <summary>The positions tokens <c>[start, start + count)</c> attend over, summed: each attends over those before it.</summary>
    public static double Positions(int start, int count) => count * (start + ((count - 1) / 2.0));
}
