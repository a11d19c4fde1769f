using System.Collections.Frozen;

namespace LlmServer.Engine.Generation;

/// <summary>One generation request. Give either <see cref="Prompt"/> (raw text) or <see cref="Messages"/> (chat).</summary>
public sealed record GenerationRequest
{
    /// <summary>Raw prompt text, used as is (BOS added when the model wants one).</summary>
    public string? Prompt { get; init; }

    /// <summary>Chat messages, rendered with the model's chat template (or the configured fallback).</summary>
    public IReadOnlyList<ChatTurn>? Messages { get; init; }

    /// <summary>Sampling settings; every field is honoured.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Most tokens to generate per choice; <c>null</c> means until the slot's context is full.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>
    /// A limit on the prompt tighter than the slot's context (an operator's): a longer prompt is refused with
    /// <see cref="GenerationErrorCode.ContextLengthExceeded"/> where the engine tokenizes it, before admission.
    /// </summary>
    public PromptTokenLimit? PromptLimit { get; init; }

    /// <summary>Stop sequences: matched across token boundaries, never emitted.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Keep generating past end-of-generation tokens (for benchmarks).</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>Optional GBNF grammar (root rule <c>root</c>) that constrains the output.</summary>
    public string? Grammar { get; init; }

    /// <summary>
    /// With <see cref="Grammar"/>: makes it lazy (llama.cpp's trigger patterns). The output is free until the answer
    /// matches one of these regular expressions (ECMAScript) from its start (the engine writes them whole for llama.cpp:
    /// see <see cref="Tools.ToolGrammar.WholeText"/>); the grammar then applies from the pattern's first non-empty
    /// capture group to the end of the text, the rest of the token that completed the match included. That part must
    /// be a prefix the grammar accepts (llama.cpp aborts the process otherwise), so only the engine's tool calling
    /// sets them.
    /// </summary>
    internal IReadOnlyList<string> GrammarTriggers { get; init; } = [];

    /// <summary>
    /// With <see cref="Grammar"/>: makes it lazy too, on a call's marker anywhere in the answer (llama.cpp's trigger
    /// words), the grammar applying from the marker on. The engine turns each into a
    /// <see cref="GrammarTriggerTokens">token</see> where it can, else into a pattern.
    /// </summary>
    internal IReadOnlyList<string> GrammarTriggerWords { get; init; } = [];

    /// <summary>
    /// With <see cref="Grammar"/>: makes it lazy on these tokens, the grammar applying from the token's text on (which
    /// must be a prefix the grammar accepts). Set by the engine from <see cref="GrammarTriggerWords"/>.
    /// </summary>
    internal IReadOnlyList<int> GrammarTriggerTokens { get; init; } = [];

    /// <summary>Whether a trigger makes <see cref="Grammar"/> lazy: free text until one fires.</summary>
    internal bool GrammarIsLazy => GrammarTriggers.Count > 0 || GrammarTriggerWords.Count > 0 || GrammarTriggerTokens.Count > 0;

    /// <summary>The triggers as the sampler takes them, once the engine has written them (see <see cref="GrammarTriggers"/>).</summary>
    internal Sampling.LazyTriggers LazyTriggers => new(GrammarTriggers, GrammarTriggerTokens);

    /// <summary>
    /// Tokens the output renders as text, where a control token renders as nothing (llama.cpp's preserved tokens):
    /// the engine adds the markers the output is parsed by (<see cref="Scheduling.MarkerTokens"/>) and the trigger tokens.
    /// </summary>
    internal FrozenSet<int> PreservedTokens { get; init; } = FrozenSet<int>.Empty;

    /// <summary>
    /// Optional session key: the sequence stays resident in its KV slot after the request, and the session's
    /// next request reuses the longest common token prefix.
    /// </summary>
    public string? SessionKey { get; init; }

    /// <summary>Number of choices (1 to 4); extra choices fork the prompt's KV cache instead of prefilling again.</summary>
    public int Choices { get; init; } = 1;

    /// <summary>
    /// How many requests the caller admits together with this one, all or none (one per prompt of a completions
    /// prompt array). More than the request's lane can ever hold at once (its slots and queue) is refused as invalid,
    /// not as a full queue, since retrying could never succeed.
    /// </summary>
    public int AdmittedTogether { get; init; } = 1;

    /// <summary>Report the log-probability of each generated token.</summary>
    public bool LogProbs { get; init; }

    /// <summary>With <see cref="LogProbs"/>: how many most likely alternatives to report per token (0 to 20).</summary>
    public int TopLogProbs { get; init; }

    /// <summary>
    /// Send a <see cref="RequestAdmitted"/> event once the request holds a slot and its cached prefix is decided
    /// (a front end whose stream opens with the prompt's usage, as Anthropic's <c>message_start</c> does).
    /// </summary>
    public bool ReportAdmission { get; init; }

    /// <summary>An id for logs and metrics; one is made when absent.</summary>
    public string? RequestId { get; init; }

    /// <summary>
    /// With <see cref="Messages"/> ending in an assistant message: continue that message (prefill) instead of
    /// starting a new answer. The prompt is the conversation before it, the assistant's turn opened, and its text;
    /// the output is only what follows. llama.cpp's server prefills the same way.
    /// </summary>
    public bool ContinueFinalMessage { get; init; }

    /// <summary>
    /// Part the answer's reasoning from its text: with a chat template whose model writes <c>&lt;think&gt;</c> blocks,
    /// the block comes as <see cref="ReasoningDelta"/>s and the text (and any tool call) is what follows it. Off, or
    /// for other templates and raw prompts, the text is as the model wrote it.
    /// </summary>
    public bool SplitReasoning { get; init; }

    /// <summary>
    /// The chat template's <c>enable_thinking</c> (llama.cpp's <c>chat_template_kwargs</c>): false asks a reasoning
    /// template to leave its block out or close it empty in the prompt (Qwen3), so the model answers without
    /// thinking. A template without a reasoning block always gets false, as llama.cpp renders it.
    /// </summary>
    public bool EnableThinking { get; init; } = true;

    /// <summary>Functions the model may call, rendered into the prompt by the model's chat template.</summary>
    public IReadOnlyList<ToolDefinition> Tools { get; init; } = [];

    /// <summary>
    /// Whether the model may, must, or must not call <see cref="Tools"/>. Required and named choices constrain
    /// the output with a grammar in the template's call syntax, so the calls parse and their arguments match
    /// the tools' schemas; <see cref="ToolChoice.None"/> leaves the tools out of the prompt.
    /// </summary>
    public ToolChoice ToolChoice { get; init; } = ToolChoice.Auto;

    /// <summary>Whether one answer may hold several calls; false allows at most one.</summary>
    public bool ParallelToolCalls { get; init; } = true;

    /// <summary>
    /// Which lane the request waits in: <see cref="RequestPriority.Batch"/> requests only take slots that
    /// interactive traffic leaves idle.
    /// </summary>
    public RequestPriority Priority { get; init; } = RequestPriority.Interactive;
}

/// <summary>What <see cref="GenerationRequest.ToolChoice"/> allows.</summary>
public enum ToolChoiceMode
{
    /// <summary>The model decides: text, or calls.</summary>
    Auto,

    /// <summary>No calls: the tools are not offered.</summary>
    None,

    /// <summary>At least one call, of any offered tool.</summary>
    Required,

    /// <summary>A call of the one tool <see cref="ToolChoice.FunctionName"/> names.</summary>
    Function,
}

/// <summary>A tool choice: a mode, and the function's name for <see cref="ToolChoiceMode.Function"/>.</summary>
public sealed record ToolChoice(ToolChoiceMode Mode, string? FunctionName = null)
{
    public static ToolChoice Auto { get; } = new(ToolChoiceMode.Auto);

    public static ToolChoice None { get; } = new(ToolChoiceMode.None);

    public static ToolChoice Required { get; } = new(ToolChoiceMode.Required);

    public static ToolChoice Function(string name) => new(ToolChoiceMode.Function, name);
}

/// <summary>The admission lane of a request.</summary>
public enum RequestPriority
{
    /// <summary>A user is waiting: admitted first.</summary>
    Interactive,

    /// <summary>Offline work (the Batch API): fills slots interactive requests leave idle and yields them back.</summary>
    Batch,
}

/// <summary>
/// A chat message. <see cref="Content"/> is null for an assistant message that only calls tools; a <c>tool</c>
/// message answers the call named by <see cref="ToolCallId"/>.
/// </summary>
public sealed record ChatTurn(string Role, string? Content)
{
    /// <summary>The calls an assistant message made.</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    /// <summary>On a <c>tool</c> message: the id of the call it answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>On a <c>tool</c> message: the function's name, where the client gave it.</summary>
    public string? Name { get; init; }

    /// <summary>
    /// On an assistant message: the reasoning that came with it, passed to the template as the message's
    /// <c>reasoning_content</c> (as llama-server does). Templates decide what to keep: Qwen3's renders it only for
    /// the turns after the last user message (a tool-call loop), and drops it from earlier ones.
    /// </summary>
    public string? ReasoningContent { get; init; }
}

/// <summary>A function call the model made: <see cref="Arguments"/> is the JSON text of its arguments.</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>A function offered to the model: <see cref="Parameters"/> is its JSON schema (an object schema), or null.</summary>
public sealed record ToolDefinition(string Name, string? Description, System.Text.Json.JsonElement? Parameters);

/// <summary>The most prompt tokens a request may have, and the setting that says so (named in the refusal).</summary>
public sealed record PromptTokenLimit(int MaxTokens, string Setting);
