namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Decides what each step decodes (vLLM's <c>schedule()</c>): admits waiting requests in arrival order while slots are
/// free, then plans one token for every generating sequence and prompt chunks, in arrival order, within the step's
/// token budget. It owns the waiting and running requests; the output of a step never changes the plan it came from.
/// </summary>
internal sealed class StepPlanner(SlotTable slots, SchedulerOptions options, SchedulerMetrics metrics, TimeProvider time)
{
    private readonly StepPlan _plan = new();

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

        // Prompt budget goes to admitted requests in arrival order.
        var budget = options.StepTokenBudget - _plan.Tokens.Count;
        foreach (var request in Running)
        {
            if (budget <= 0)
            {
                break;
            }

            if (request.IsPrefilling)
            {
                var count = Math.Min(budget, request.PromptTokens.Length - request.Prefilled);
                _plan.AddChunk(request, count);
                budget -= count;
            }
        }

        return _plan;
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
