namespace LlmServer.Engine.Scheduling;

/// <summary>Configuration section <c>Scheduler</c>.</summary>
public sealed class SchedulerOptions
{
    public const string SectionName = "Scheduler";

    /// <summary>Sequences decoded together; each owns one KV slot.</summary>
    public int Slots { get; set; } = 4;

    /// <summary>
    /// Total KV-cache tokens of the llama context, split evenly between slots: each slot holds
    /// <c>ContextSize / Slots</c> tokens (prompt plus generation). 0 (the default) means <c>Slots</c> times the
    /// model's training context, capped at 8192 per slot.
    /// </summary>
    public int ContextSize { get; set; }

    /// <summary>
    /// Element type of the K and V caches: <c>f16</c> (default), <c>f32</c>, <c>bf16</c>, <c>q8_0</c> (half of
    /// f16's memory), <c>q5_1</c>, <c>q5_0</c>, <c>q4_1</c>, <c>q4_0</c>, <c>iq4_nl</c>. Quantized types need
    /// flash attention (turned on for them unless <see cref="FlashAttention"/> is false, which is refused).
    /// </summary>
    public string KvCacheType { get; set; } = "f16";

    /// <summary>Flash attention: null lets llama.cpp decide (on where the backend supports it).</summary>
    public bool? FlashAttention { get; set; }

    /// <summary>Requests that may wait for a slot; beyond it requests are refused as overloaded (HTTP 429).</summary>
    public int MaxQueue { get; set; } = 64;

    /// <summary>
    /// Batch-lane requests (<see cref="Generation.RequestPriority.Batch"/>) that may wait for idle slots; beyond it
    /// they are refused as overloaded. The batch lane never takes room from <see cref="MaxQueue"/>.
    /// </summary>
    public int MaxBatchQueue { get; set; } = 256;

    /// <summary>
    /// Most tokens decoded in one step (the hard cap): one per generating sequence first, then prompt chunks up to
    /// this budget. With nothing generating, prompts are prefilled at this size.
    /// </summary>
    public int StepTokenBudget { get; set; } = 512;

    /// <summary>
    /// While sequences generate, the time a step should take (their time between tokens): prompt chunks are sized
    /// by the scheduler's measured cost per prompt token to fit it, within <see cref="StepTokenBudget"/>.
    /// 0 turns the time target off (prompt chunks fill the token budget). 80 ms is 12 tokens a second per stream,
    /// faster than anyone reads. Deep in a long prompt on a CPU even a <see cref="MinPromptChunk"/> takes longer than
    /// that; <see cref="MinPromptShare"/> says how such steps stretch.
    /// </summary>
    public int TargetStepMs { get; set; } = 80;

    /// <summary>
    /// While sequences generate and prompts wait, the least share of a step's time that goes to prompt tokens' own
    /// work (0 to 0.95). Where the generation and a chunk's fixed cost leave a step of <see cref="TargetStepMs"/>
    /// little room, the step stretches until prompt tokens get this share: on a CPU, a small chunk deep in a long
    /// prompt costs several times its share of a large one, so a strict target would admit long prompts several times
    /// slower. The share is of the whole step, generation included: where generation alone takes more than
    /// (1 - share) of the target, steps with an interactive prompt stretch to about generation / (1 - share). Higher
    /// admits long prompts sooner and lengthens the running streams' time between tokens in those steps; 0 keeps to
    /// the target whatever the prompts' speed. Batch prompts never stretch a step.
    /// </summary>
    public double MinPromptShare { get; set; } = 0.6;

    /// <summary>
    /// Prompt tokens every short prompt in progress, and the oldest long one (see <see cref="MaxLongPrefills"/>),
    /// advance by in every step, however tight the time target. 65 because llama.cpp's CPU flash attention takes a
    /// sequence's prompt tokens through its tiled kernel only when a micro-batch holds at least 64 of them, and with
    /// the KV cache split per sequence one token of a chunk rides in the generating sequences' micro-batch. Below
    /// that, deep in a prompt, each token costs about twice as much (synth110m 1,500 tokens deep: 11 to 15 ms a token
    /// in chunks of 16 to 48, 6 to 7 ms from 64 up).
    /// </summary>
    public int MinPromptChunk { get; set; } = 65;

    /// <summary>
    /// Long interactive prompts (over <see cref="LongPromptTokens"/> to prefill) that advance by a minimal chunk in
    /// every step side by side; a long prompt beyond them waits its turn, in arrival order (vLLM's
    /// <c>max_long_partial_prefills</c>). Short prompts always advance. With 1, the first long prompt is answered as
    /// soon as it alone is prefilled, where side by side every long prompt waits for all of them. The limit holds the minimal chunks only: where the time target leaves
    /// room, waiting long prompts take it in arrival order. <see cref="Slots"/> lets every long prompt advance every step.
    /// </summary>
    public int MaxLongPrefills { get; set; } = 1;

    /// <summary>
    /// Prompt tokens to prefill (after any cached prefix) above which a prompt counts as long for
    /// <see cref="MaxLongPrefills"/>. A shorter prompt takes a minimal chunk every step beside the long ones.
    /// </summary>
    public int LongPromptTokens { get; set; } = 256;

    /// <summary>
    /// The batch lane's hysteresis: the most steps a slot stays reserved for interactive traffic after interactive
    /// demand left it. Batch requests take only the slots that the peak interactive demand of the recent steps leaves
    /// idle; how many steps count as recent is learnt from the gaps between an interactive request leaving and the next
    /// arriving (twice the longest of the last 16, plus one), up to this. While nothing runs, the loop counts a step per
    /// measured step time. A batch request held this many steps in all takes a free slot anyway, so interactive
    /// requests that keep coming back within the window delay the batch lane but never starve it. 0 turns the hold
    /// off: a batch request takes any idle slot at once (and is preempted when an interactive request arrives for it).
    /// </summary>
    public int BatchHoldMaxSteps { get; set; } = 64;

    /// <summary>Most tokens one request may ask to generate when it gives no limit; 0 means the slot's context.</summary>
    public int DefaultMaxTokens { get; set; }

    /// <summary>Share one KV buffer between all slots (llama.cpp's unified cache); slower with many sequences.</summary>
    public bool UnifiedKvCache { get; set; }

    /// <summary>
    /// When a session's window slides, move the kept turns' KV cells down over the dropped ones (a K-shift, where the
    /// model allows shifting) instead of prefilling them again. Off by default: it is an approximation. The kept tokens'
    /// keys and values above the first layer were computed with the dropped turns in view, and a shift rounds the
    /// rotated keys to the cache type a second time, so after a slide the answers differ from those of the same
    /// conversation prefilled afresh (measured on stories260K: logits off by up to 0.87, the greedy token changed at
    /// 2 of 22 positions). Off, the kept turns are prefilled again as prompt chunks (step budget, other slots keep
    /// decoding) and a slid session answers as the same tokens prefilled from scratch.
    /// </summary>
    public bool WarmSlide { get; set; }

    /// <summary>Reuse a resident session's KV cache for its next request (turn it off to measure the gain).</summary>
    public bool PrefixReuse { get; set; } = true;
}
