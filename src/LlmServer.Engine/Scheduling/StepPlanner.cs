namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Decides what each step decodes (vLLM's <c>schedule()</c>): admits waiting requests in arrival order while slots are
/// free, then plans one token for every generating sequence and prompt chunks, in arrival order, within the step's
/// prompt budget. It owns the waiting and running requests; the output of a step never changes the plan it came from.
/// </summary>
/// <remarks>
/// The prompt budget: with nothing generating, the whole <see cref="SchedulerOptions.StepTokenBudget"/>. With
/// sequences generating and <see cref="SchedulerOptions.TargetStepMs"/> set, the prompt tokens the
/// <see cref="StepCostModel"/> expects to fit in that time beside the generation, within the token budget (the hard
/// cap), and never less than <see cref="SchedulerOptions.MinPromptChunk"/> for the oldest prompt: a long prompt always
/// advances. A time-limited budget first gives every prefilling request up to a minimal chunk in arrival order, so a
/// short prompt behind a long one starts generating in its first step, then the rest in arrival order.
/// </remarks>
internal sealed class StepPlanner(SlotTable slots, SchedulerOptions options, StepCostModel costs, SchedulerMetrics metrics, TimeProvider time)
{
    private readonly StepPlan _plan = new();
    private readonly List<int> _chunkSizes = [];

    /// <summary>Requests waiting for slots, in arrival order.</summary>
    public List<ScheduledRequest> Waiting { get; } = [];

    /// <summary>Requests holding slots, in admission order.</summary>
    public List<ScheduledRequest> Running { get; } = [];

    public void Enqueue(ScheduledRequest request) => Waiting.Add(request);

    /// <summary>Admits what fits and returns the step's plan (empty when there is nothing to decode).</summary>
    public StepPlan Plan()
    {
        _plan.Clear();
        Admit();

        // One walk over the slots: every generating sequence decodes its pending token.
        for (var i = 0; i < slots.Count; i++)
        {
            var slot = slots[i];
            if (slot.Choice is { IsGenerating: true, IsDone: false } choice)
            {
                _plan.AddToken(slot.Owner!, choice);
            }
        }

        PlanPromptChunks(_plan.Tokens.Count);
        return _plan;
    }

    private void PlanPromptChunks(int generating)
    {
        var hardCap = options.StepTokenBudget - generating;
        var timed = generating > 0 && options.TargetStepMs > 0;
        var budget = hardCap;
        if (timed)
        {
            // Unknown cost (no prompt measured yet): start with the minimal chunk and learn from it.
            var fits = costs.PromptTokensWithin(options.TargetStepMs, generating) ?? 0;
            budget = Math.Clamp(fits, Math.Min(options.MinPromptChunk, hardCap), hardCap);
        }

        _chunkSizes.Clear();
        var first = true;
        foreach (var request in Running)
        {
            var count = 0;
            if (request.IsPrefilling && budget > 0 && (first || timed))
            {
                // Untimed, the oldest prompt takes what it needs first; timed, each takes a minimal chunk first.
                var share = timed ? options.MinPromptChunk : budget;
                count = Math.Min(Math.Min(share, budget), request.PromptTokens.Length - request.Prefilled);
                budget -= count;
                first = false;
            }

            _chunkSizes.Add(count);
        }

        for (var i = 0; i < Running.Count; i++)
        {
            var request = Running[i];
            if (request.IsPrefilling)
            {
                var count = _chunkSizes[i] + Math.Min(budget, request.PromptTokens.Length - request.Prefilled - _chunkSizes[i]);
                budget -= count - _chunkSizes[i];
                if (count > 0)
                {
                    _plan.AddChunk(request, count);
                }
            }
        }
    }

    /// <summary>Puts a running request back at the head of the queue with empty slots: it will be prefilled again.</summary>
    public void Requeue(ScheduledRequest request)
    {
        Running.Remove(request);
        slots.Vacate(request);
        request.IsAdmitted = false;
        request.Prefilled = 0;
        request.CachedTokens = 0;
        Waiting.Insert(0, request);
    }

    private void Admit()
    {
        while (Waiting.Count > 0 && slots.FreeCount >= Waiting[0].Choices.Length)
        {
            var request = Waiting[0];
            Waiting.RemoveAt(0);
            var now = time.GetTimestamp();
            request.AdmittedAt = now;
            request.IsAdmitted = true;
            metrics.Queued(time.GetElapsedTime(request.ArrivedAt, now));

            var reused = slots.Claim(request, options.PrefixReuse);
            request.Prefilled = reused;
            request.CachedTokens = reused;
            metrics.PrefixLookup(request.PromptTokens.Length, reused);
            Running.Add(request);
        }
    }
}
