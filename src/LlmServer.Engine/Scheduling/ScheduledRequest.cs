using LlmServer.Engine.Generation;
using LlmServer.Engine.Text;

namespace LlmServer.Engine.Scheduling;

/// <summary>An admitted request as the scheduler thread sees it. Only <see cref="RequestCancel"/> is called from other threads.</summary>
internal sealed class ScheduledRequest
{
    private int _cancelRequested;

    public ScheduledRequest(
        string id,
        int[] promptTokens,
        string? promptText,
        GenerationRequest request,
        int maxTokens,
        ChoiceState[] choices,
        long arrivedAt,
        StreamPublisher publisher,
        TextTokenBoundary[]? promptBoundaries = null)
    {
        Id = id;
        PromptTokens = promptTokens;
        Prefill = promptTokens;
        PromptText = promptText;
        PromptBoundaries = promptBoundaries ?? [];
        Request = request;
        MaxTokens = maxTokens;
        Choices = choices;
        ArrivedAt = arrivedAt;
        Events = new GenerationEventQueue(publisher);
    }

    public string Id { get; }

    public int[] PromptTokens { get; }

    /// <summary>
    /// The tokens choice 0's slot must hold before the request generates: its prompt, or, once a batch request was
    /// preempted while generating, its prompt and the tokens it had generated (see <see cref="IsResuming"/>).
    /// </summary>
    public int[] Prefill { get; set; }

    /// <summary>
    /// The request was preempted while generating: its prefill restores the KV of what it generated, after which
    /// it decodes its pending token and goes on, emitting nothing twice.
    /// </summary>
    public bool IsResuming { get; set; }

    public bool IsBatch => Request.Priority == RequestPriority.Batch;

    /// <summary>The prompt as text, when known: a session's resident text is this plus what was generated.</summary>
    public string? PromptText { get; }

    /// <summary>Where <see cref="PromptText"/> and <see cref="PromptTokens"/> split exactly (the turns before this one).</summary>
    public TextTokenBoundary[] PromptBoundaries { get; }

    public GenerationRequest Request { get; }

    public int MaxTokens { get; }

    public ChoiceState[] Choices { get; }

    /// <summary>The request's events; the scheduler publishes them to the reader once per step.</summary>
    public GenerationEventQueue Events { get; }

    public long ArrivedAt { get; }

    public long AdmittedAt { get; set; }

    public long PrefillDoneAt { get; set; }

    /// <summary>
    /// Steps this batch request waited at the head of its lane for a free slot the batch lane's hold reserved; at
    /// <see cref="SchedulerOptions.BatchHoldMaxSteps"/> it takes the slot anyway, so the hold cannot starve it.
    /// </summary>
    public int HeldSteps { get; set; }

    /// <summary>Tokens of <see cref="Prefill"/> whose KV is in choice 0's slot (reused or prefilled).</summary>
    public int Prefilled { get; set; }

    /// <summary>Prompt tokens served from the cache.</summary>
    public int CachedTokens { get; set; }

    public bool IsAdmitted { get; set; }

    public bool IsPrefilling => IsAdmitted && Prefilled < Prefill.Length;

    /// <summary>Its prefill, as admitted, is over <see cref="SchedulerOptions.LongPromptTokens"/> tokens.</summary>
    public bool IsLongPrompt { get; set; }

    public int FinishedChoices { get; set; }

    public bool CancelRequested => Volatile.Read(ref _cancelRequested) != 0;

    public void RequestCancel() => Interlocked.Exchange(ref _cancelRequested, 1);
}

/// <summary>One choice of a request: its slot, sampler and the text pipeline of its output.</summary>
internal sealed class ChoiceState(int index, ITokenSampler sampler, IReadOnlyList<string> stops)
{
    public int Index { get; } = index;

    public ITokenSampler Sampler { get; } = sampler;

    public Utf8StreamDecoder Decoder { get; } = new();

    public StopSequenceMatcher StopMatcher { get; } = new(stops);

    public int Slot { get; set; } = -1;

    /// <summary>The sampled token waiting to be decoded next step.</summary>
    public int PendingToken { get; set; }

    /// <summary>Position of <see cref="PendingToken"/> in the slot.</summary>
    public int Position { get; set; }

    public int Generated { get; set; }

    public bool IsGenerating { get; set; }

    public bool IsDone { get; set; }

    /// <summary>Index of this choice's entry in the current batch, -1 when it has none.</summary>
    public int BatchIndex { get; set; } = -1;

    public long FirstTokenAt { get; set; }

    public long LastTokenAt { get; set; }

    /// <summary>Tokens sampled, an end-of-generation token included (unlike <see cref="Generated"/>).</summary>
    public int Sampled { get; set; }

    /// <summary>How the choice ended, once <see cref="IsDone"/>; with its error when it failed.</summary>
    public FinishReason FinishReason { get; set; }

    public GenerationError? Error { get; set; }

    /// <summary>Tokens produced since the last emitted text (a character can span tokens).</summary>
    public int UnemittedTokens { get; set; }

    /// <summary>Log-probabilities of tokens whose text has not all been emitted yet (held back or unfinished).</summary>
    public List<TokenLogProb>? UnemittedLogProbs { get; set; }

    /// <summary>For each of <see cref="UnemittedLogProbs"/>: the characters decoded once its token's text is complete.</summary>
    public List<long> UnemittedLogProbEnds { get; } = [];

    /// <summary>Characters the decoder has produced so far (the unit the stop-sequence matcher holds text back in).</summary>
    public long DecodedChars { get; set; }

    /// <summary>Characters emitted so far.</summary>
    public long EmittedChars { get; set; }
}

/// <summary>The text a resident session's KV holds, with exactly the tokens that hold it.</summary>
internal sealed record ResidentText(string Text, int[] Tokens, TextTokenBoundary[] Boundaries);
