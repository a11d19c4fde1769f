using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Decides what each step decodes (vLLM's <c>schedule()</c>): admits waiting requests (interactive ones first, in
/// arrival order; batch ones into slots left idle that recent interactive demand does not reserve, preempted, least
/// work first, when an interactive request needs their slot), then
/// plans one token for every generating sequence and prompt chunks, in arrival order, within the step's prompt
/// budget. It owns the waiting and running requests; the output of a step never changes the plan it came from.
/// </summary>
/// <remarks>
/// The prompt budget: with nothing generating, the whole <see cref="SchedulerOptions.StepTokenBudget"/> for interactive
/// prompts (batch prompts keep to the time target, without the share's stretch, so that an interactive request never
/// waits behind a long batch step). With
/// sequences generating and <see cref="SchedulerOptions.TargetStepMs"/> set, the prompt tokens the
/// <see cref="StepCostModel"/> expects to fit in that time beside the generation, but never so few that prompt tokens
/// get less than <see cref="SchedulerOptions.MinPromptShare"/> of the step (where a chunk's fixed cost and the
/// generation leave a short step little room, the step stretches rather than admit prompts at a crawl), never less
/// than <see cref="SchedulerOptions.MinPromptChunk"/> for every short prompt in progress and the oldest long one (so
/// prefill always advances, long prompts in arrival order, and a short prompt behind a long one starts generating in
/// its first steps), and always within the token budget (the hard cap). With the time target on, the budget goes
/// first to those minimal chunks (also in a step where nothing generates), then to the rest in arrival order; with it
/// off, in arrival order only.
/// </remarks>
internal sealed class StepPlanner(SlotTable slots, SchedulerOptions options, StepCostModel costs, SchedulerMetrics metrics, TimeProvider time)
{
    private readonly StepPlan _plan = new();
    private readonly List<int> _minimalChunks = [];
    private readonly List<int> _chunkSizes = [];
    private readonly List<ScheduledRequest> _victims = [];
    private readonly InteractiveDemandWindow _demand = new(options.BatchHoldMaxSteps);

    /// <summary>Interactive requests waiting for slots, in arrival order.</summary>
    public List<ScheduledRequest> Waiting { get; } = [];

    /// <summary>Batch requests waiting for slots that interactive traffic leaves idle, in arrival order.</summary>
    public List<ScheduledRequest> BatchWaiting { get; } = [];

    /// <summary>Requests holding slots, in admission order.</summary>
    public List<ScheduledRequest> Running { get; } = [];

    /// <summary>
    /// A batch request waits for a slot that is free but reserved for interactive traffic (see
    /// <see cref="InteractiveDemandWindow"/>): the reservation ends after some steps, so the loop must keep stepping.
    /// </summary>
    public bool HoldsBatch { get; private set; }

    public void Enqueue(ScheduledRequest request) => LaneOf(request).Add(request);

    /// <summary>Admits what fits and returns the step's plan (empty when there is nothing to decode).</summary>
    public StepPlan Plan()
    {
        _plan.Clear();
        Admit();

        // While an interactive prompt is prefilled, batch requests sit the step out: their tokens would only lengthen
        // the steps that stand between an interactive request and its first token.
        var batchPauses = InteractivePrefilling();

        // One walk over the slots: every generating sequence decodes its pending token.
        for (var i = 0; i < slots.Count; i++)
        {
            var slot = slots[i];
            if (slot.Choice is { IsGenerating: true, IsDone: false } choice && !(batchPauses && slot.Owner!.IsBatch))
            {
                _plan.AddToken(slot.Owner!, choice);
            }
        }

        PlanPromptChunks(_plan.Tokens.Count, batchPauses);
        return _plan;
    }

    /// <summary>Puts a running request back at the head of its lane with empty slots: it will be prefilled again.</summary>
    public void Requeue(ScheduledRequest request)
    {
        Running.Remove(request);
        slots.Vacate(request);
        request.IsAdmitted = false;
        request.Prefilled = 0;
        LaneOf(request).Insert(0, request);
    }

    private bool InteractivePrefilling()
    {
        foreach (var request in Running)
        {
            if (!request.IsBatch && request.IsPrefilling)
            {
                return true;
            }
        }

        return false;
    }

    private void PlanPromptChunks(int generating, bool batchPauses)
    {
        var hardCap = options.StepTokenBudget - generating;

        // With a time target, the prompts MarkMinimalChunks picks get a minimal chunk first, even in a step with
        // nothing generating: a short prompt admitted behind a long one starts now, not after the long one's whole
        // prefill. Batch prompts keep to the target also with nothing generating, and get no stretch for their share:
        // an interactive request that arrives waits for at most one target-sized step.
        var sharing = options.TargetStepMs > 0;
        var timed = sharing && (generating > 0 || !batchPauses);
        var floor = MarkMinimalChunks(sharing, batchPauses);
        var budget = hardCap;
        if (timed)
        {
            // Unknown cost (no prompt measured yet): start with the minimal chunks and learn from them.
            var least = Math.Min(floor, hardCap);
            budget = costs.Prompt is { } cost && AnyPrefills(batchPauses) ? TimedBudget(cost, generating, least, hardCap, batchPauses) : least;
        }

        SizeChunks(budget, batchPauses);
        if (timed && costs.Prompt is { } expected)
        {
            var chunksMs = ChunksMs(expected);
            _plan.ExpectedMs = costs.KnownGenerationMs(generating) + (chunksMs > 0 ? expected.FixedMs + chunksMs : 0);
        }

        for (var i = 0; i < Running.Count; i++)
        {
            if (_chunkSizes[i] > 0)
            {
                _plan.AddChunk(Running[i], _chunkSizes[i]);
            }
        }
    }

    /// <summary>
    /// The prompt budget, between <paramref name="least"/> and <paramref name="most"/> tokens, that the cost model
    /// expects to fill the time target beside the generation, or more where that gives prompt tokens less than their
    /// share of the step. Each chunk is costed at its own depth: the same tokens cost far more deep in a long prompt.
    /// </summary>
    private int TimedBudget(PromptCost cost, int generating, int least, int most, bool batchPauses)
    {
        var overheadMs = costs.KnownGenerationMs(generating) + cost.FixedMs;
        var fits = LastBudgetWhere(least, most, ms => ms <= options.TargetStepMs - overheadMs, cost, batchPauses);
        if (!batchPauses || options.MinPromptShare <= 0)
        {
            return fits;
        }

        // The fewest tokens whose own time is the share of a step made of them, the generation and the fixed part.
        var shareMs = options.MinPromptShare / (1 - options.MinPromptShare) * overheadMs;
        var share = LastBudgetWhere(least - 1, most, ms => ms < shareMs, cost, batchPauses) + 1;
        return Math.Max(fits, Math.Min(share, most));
    }

    /// <summary>
    /// The largest budget in [<paramref name="least"/>, <paramref name="most"/>] whose chunks' time satisfies
    /// <paramref name="holds"/> (<paramref name="least"/> where none does): the time only grows with the budget.
    /// </summary>
    private int LastBudgetWhere(int least, int most, Func<double, bool> holds, PromptCost cost, bool batchPauses)
    {
        var (low, high) = (least, most);
        while (low < high)
        {
            var middle = (int)(low + (((long)high - low + 1) / 2));
            SizeChunks(middle, batchPauses);
            if (holds(ChunksMs(cost)))
            {
                low = middle;
            }
            else
            {
                high = middle - 1;
            }
        }

        return low;
    }

    /// <summary>Sizes each running request's chunk for a prompt budget: the minimal chunks first, then what is left in arrival order.</summary>
    private void SizeChunks(int budget, bool batchPauses)
    {
        _chunkSizes.Clear();
        for (var i = 0; i < Running.Count; i++)
        {
            var count = Math.Min(_minimalChunks[i], budget);
            _chunkSizes.Add(count);
            budget -= count;
        }

        for (var i = 0; i < Running.Count && budget > 0; i++)
        {
            var request = Running[i];
            if (Prefills(request, batchPauses))
            {
                var more = Math.Min(budget, request.Prefill.Length - request.Prefilled - _chunkSizes[i]);
                _chunkSizes[i] += more;
                budget -= more;
            }
        }
    }

    private double ChunksMs(PromptCost cost)
    {
        var ms = 0.0;
        for (var i = 0; i < Running.Count; i++)
        {
            ms += cost.TokensMs(Running[i].Prefilled, _chunkSizes[i]);
        }

        return ms;
    }

    /// <summary>
    /// Sets each running request's minimal chunk for this step (0 for none) and returns their sum, the floor of a
    /// timed prompt budget. With a time target, in arrival order: every short interactive prompt (so it starts
    /// generating in its first steps, whatever is being prefilled), the first <see cref="SchedulerOptions.MaxLongPrefills"/>
    /// long ones by arrival (vLLM's <c>max_long_partial_prefills</c>: long prompts advancing side by side split the
    /// steps' prompt tokens and are all answered at the end, where one after the other the first is answered after its
    /// own prefill), and one of the batch prompts (they must progress, but batch requests
    /// admitted together, as they finish together, would otherwise stretch every step by a chunk each while an
    /// interactive request waits for the step to end). A long prompt past the limit waits its turn, which comes as
    /// soon as the one before it is prefilled; it still takes budget the others leave, in arrival order.
    /// </summary>
    private int MarkMinimalChunks(bool sharing, bool batchPauses)
    {
        _minimalChunks.Clear();
        var total = 0;
        var batch = false;
        for (var i = 0; i < Running.Count; i++)
        {
            var request = Running[i];
            var chunk = 0;
            if (sharing && Prefills(request, batchPauses))
            {
                var takes = request.IsBatch ? !batch : !request.IsLongPrompt || OlderLongPrompts(i, batchPauses) < options.MaxLongPrefills;
                batch |= request.IsBatch;
                if (takes)
                {
                    chunk = Math.Min(options.MinPromptChunk, request.Prefill.Length - request.Prefilled);
                }
            }

            _minimalChunks.Add(chunk);
            total += chunk;
        }

        return total;
    }

    /// <summary>
    /// Long interactive prompts in progress that arrived before <c>Running[index]</c> (by arrival, not admission: a
    /// prompt requeued after a failed decode is admitted again behind later ones, and keeps its turn).
    /// </summary>
    private int OlderLongPrompts(int index, bool batchPauses)
    {
        var request = Running[index];
        var older = 0;
        for (var i = 0; i < Running.Count; i++)
        {
            var other = Running[i];
            if (other.IsLongPrompt && !other.IsBatch && Prefills(other, batchPauses)
                && (other.ArrivedAt < request.ArrivedAt || (other.ArrivedAt == request.ArrivedAt && i < index)))
            {
                older++;
            }
        }

        return older;
    }

    private bool AnyPrefills(bool batchPauses)
    {
        foreach (var request in Running)
        {
            if (Prefills(request, batchPauses))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The request has prompt left and takes part in this step (batch requests sit out while <paramref name="batchPauses"/>).</summary>
    private static bool Prefills(ScheduledRequest request, bool batchPauses) => request.IsPrefilling && !(batchPauses && request.IsBatch);

    private List<ScheduledRequest> LaneOf(ScheduledRequest request) => request.IsBatch ? BatchWaiting : Waiting;

    /// <summary>
    /// Interactive requests first, in arrival order, preempting running batch requests when no slot is free; batch
    /// requests only while no interactive request waits, in the slots left idle that recent interactive demand does
    /// not reserve (see <see cref="InteractiveDemandWindow"/>).
    /// </summary>
    private void Admit()
    {
        HoldsBatch = false;
        while (Waiting.Count > 0)
        {
            var needed = Waiting[0].Choices.Length;
            if (slots.FreeCount < needed && !TryPreemptBatch(needed))
            {
                _demand.Observe(InteractiveDemand());
                return;
            }

            Start(Waiting[0], Waiting);
        }

        var room = slots.Count - _demand.Observe(InteractiveDemand()) - BatchSlots();
        while (BatchWaiting.Count > 0 && slots.FreeCount >= BatchWaiting[0].Choices.Length)
        {
            var needed = BatchWaiting[0].Choices.Length;
            if (needed > room && ++BatchWaiting[0].HeldSteps <= options.BatchHoldMaxSteps)
            {
                HoldsBatch = true;
                return;
            }

            room -= needed;
            Start(BatchWaiting[0], BatchWaiting);
        }
    }

    /// <summary>Slots held by running interactive requests and needed by waiting ones.</summary>
    private int InteractiveDemand()
    {
        var demand = 0;
        foreach (var request in Running)
        {
            demand += request.IsBatch ? 0 : request.Choices.Length;
        }

        foreach (var request in Waiting)
        {
            demand += request.Choices.Length;
        }

        return demand;
    }

    private int BatchSlots()
    {
        var held = 0;
        foreach (var request in Running)
        {
            held += request.IsBatch ? request.Choices.Length : 0;
        }

        return held;
    }

    private void Start(ScheduledRequest request, List<ScheduledRequest> lane)
    {
        lane.RemoveAt(0);
        var reused = slots.Claim(request, options.PrefixReuse);
        request.Prefilled = reused;
        request.IsLongPrompt = request.Prefill.Length - reused > options.LongPromptTokens;
        request.IsAdmitted = true;
        if (request.AdmittedAt == 0)
        {
            var now = time.GetTimestamp();
            request.AdmittedAt = now;
            metrics.Queued(time.GetElapsedTime(request.ArrivedAt, now));
        }

        if (!request.IsResuming)
        {
            request.CachedTokens = reused;
            metrics.PrefixLookup(request.PromptTokens.Length, reused);
            if (request.Request.ReportAdmission)
            {
                request.Events.Write(new RequestAdmitted(0, request.PromptTokens.Length, reused));
            }
        }

        Running.Add(request);
    }

    /// <summary>
    /// Frees <paramref name="needed"/> slots by preempting the batch requests with the least work in their slots
    /// (the least to lose: a request whose slot is reused prefills again; on ties, the one admitted last), if that
    /// frees enough; else preempts nothing. Each goes back to the head of the batch lane.
    /// </summary>
    private bool TryPreemptBatch(int needed)
    {
        var freeable = slots.FreeCount;
        _victims.Clear();
        foreach (var request in Running)
        {
            if (CanPreempt(request))
            {
                freeable += request.Choices.Length;
                _victims.Add(request);
            }
        }

        if (freeable < needed)
        {
            return false;
        }

        _victims.Sort((a, b) => Work(a) != Work(b) ? Work(a).CompareTo(Work(b)) : Running.IndexOf(b).CompareTo(Running.IndexOf(a)));
        foreach (var request in _victims)
        {
            if (slots.FreeCount >= needed)
            {
                break;
            }

            Preempt(request);
        }

        return true;
    }

    /// <summary>Tokens whose KV the request has in its slots (prompt reused or prefilled, and generated).</summary>
    private int Work(ScheduledRequest request)
    {
        var work = 0;
        foreach (var choice in request.Choices)
        {
            work += choice.Slot < 0 ? 0 : slots[choice.Slot].Tokens.Count;
        }

        return work;
    }

    /// <summary>
    /// A batch request can continue later if it has one choice (its slot's tokens are exactly what it needs back), or
    /// has not produced anything yet. Several choices that already generate diverge into several slots: they run on.
    /// </summary>
    private static bool CanPreempt(ScheduledRequest request) =>
        request.IsBatch && (request.Choices.Length == 1 || Array.TrueForAll(request.Choices, c => !c.IsGenerating && !c.IsDone));

    private void Preempt(ScheduledRequest request)
    {
        Running.Remove(request);
        var choice = request.Choices[0];
        if (choice.IsGenerating)
        {
            // The slot holds the prompt and every generated token but the pending one, which decodes after them.
            request.Prefill = [.. slots[choice.Slot].Tokens];
            request.IsResuming = true;
            choice.IsGenerating = false;
        }

        slots.Yield(request, time.GetTimestamp());
        request.IsAdmitted = false;
        request.Prefilled = 0;
        BatchWaiting.Insert(0, request);
        metrics.Preempted();
    }
}
