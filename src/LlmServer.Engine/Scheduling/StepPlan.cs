namespace LlmServer.Engine.Scheduling;

/// <summary>
/// What one step decodes (vLLM's <c>SchedulerOutput</c>): the next token of every generating sequence, in ascending
/// slot order, and the prompt chunks that fit the step's budget, in arrival order. The planner refills one instance
/// every step.
/// </summary>
internal sealed class StepPlan
{
    private readonly List<PlannedToken> _tokens = [];
    private readonly List<PromptChunk> _chunks = [];

    /// <summary>One token for each generating sequence, in ascending slot order.</summary>
    public IReadOnlyList<PlannedToken> Tokens => _tokens;

    /// <summary>Prompt chunks, in arrival order of their requests.</summary>
    public IReadOnlyList<PromptChunk> Chunks => _chunks;

    public int PromptTokens { get; private set; }

    /// <summary>The positions the prompt tokens attend over, summed: what their attention costs grows with.</summary>
    public double PromptPositions { get; private set; }

    /// <summary>The step's time as the cost model expects it, where a time target sized it (NaN otherwise): for the step log.</summary>
    public double ExpectedMs { get; set; }

    public bool IsEmpty => _tokens.Count == 0 && _chunks.Count == 0;

    public void Clear()
    {
        _tokens.Clear();
        _chunks.Clear();
        PromptTokens = 0;
        PromptPositions = 0;
        ExpectedMs = double.NaN;
    }

    public void AddToken(ScheduledRequest request, ChoiceState choice) => _tokens.Add(new PlannedToken(request, choice));

    public void AddChunk(ScheduledRequest request, int count)
    {
        _chunks.Add(new PromptChunk(request, request.Prefilled, count));
        PromptTokens += count;
        PromptPositions += PromptCost.Positions(request.Prefilled, count);
    }
}

/// <summary>A generating choice's pending token, decoded this step.</summary>
internal readonly record struct PlannedToken(ScheduledRequest Request, ChoiceState Choice);

/// <summary>Tokens <c>[Start, Start + Count)</c> of a request's prefill, decoded this step into choice 0's slot.</summary>
internal readonly record struct PromptChunk(ScheduledRequest Request, int Start, int Count)
{
    public int Slot => Request.Choices[0].Slot;

    /// <summary>The chunk ends the prefill: its last token's logits give the request's first token.</summary>
    public bool CompletesPrompt => Start + Count == Request.Prefill.Length;

    /// <summary>The last token's logits are needed: the prefill ends and the next token is not known yet.</summary>
    public bool WantsLogits => CompletesPrompt && !Request.IsResuming;
}
