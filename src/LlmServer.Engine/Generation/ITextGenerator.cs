using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Generation;

/// <summary>
/// The one way into the engine: the REST API, the SignalR hub, sessions and the in-process
/// <c>IChatClient</c> all generate through this interface, so they share one scheduler.
/// </summary>
public interface ITextGenerator
{
    /// <summary>Where the engine is in its life: loading, ready, draining, faulted or stopped.</summary>
    EngineState State { get; }

    /// <summary>
    /// Why the engine is <see cref="EngineState.Faulted"/> when its model did not load (a missing or unreadable file),
    /// for hosts that have no server to report it; <c>null</c> otherwise.
    /// </summary>
    Exception? LoadFailure => null;

    /// <summary>
    /// Completes with the new state once <see cref="State"/> is no longer <paramref name="state"/> (at once when it
    /// already differs): the event to wait on instead of polling <see cref="State"/>, for example for the end of
    /// <see cref="EngineState.Loading"/>. A state the engine never leaves (<see cref="EngineState.Stopped"/>) never
    /// completes it; <paramref name="cancellationToken"/> bounds the wait.
    /// </summary>
    Task<EngineState> WaitForStateChangeAsync(EngineState state, CancellationToken cancellationToken = default);

    /// <summary>The loaded model, or <c>null</c> while it loads.</summary>
    ModelInfo? Model { get; }

    /// <summary>A snapshot of the scheduler: slots, running and waiting requests, KV usage.</summary>
    SchedulerStatus GetStatus();

    /// <summary>
    /// Renders chat messages and the tools offered into the prompt text the model expects (its template, or the
    /// fallback), exactly as <see cref="Submit"/> renders them. Throws <see cref="GenerationException"/> when the
    /// template refuses the messages (<see cref="GenerationErrorCode.TemplateRefused"/>) or cannot render them.
    /// </summary>
    string ApplyChatTemplate(IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, bool addAssistantPrompt = true);

    /// <summary>
    /// The exact prompt text <see cref="Submit"/> renders for <paramref name="request"/>: its messages through the
    /// template, with its tools where they are offered (or its raw prompt). Throws <see cref="GenerationException"/>
    /// for a request <see cref="Submit"/> would refuse as malformed.
    /// </summary>
    string RenderPrompt(GenerationRequest request);

    /// <summary>Tokenizes text with the model's vocabulary.</summary>
    IReadOnlyList<int> Tokenize(string text, bool addSpecial = false, bool parseSpecial = false);

    /// <summary>
    /// Counts a prompt's tokens as <see cref="Submit"/> does (special tokens added and parsed); where even the fewest
    /// tokens the text can have exceed <paramref name="limit"/>, answers that lower bound without tokenizing
    /// (<see cref="TokenCount.AtLeast"/>): a prompt far past the context costs no tokenization.
    /// </summary>
    TokenCount CountPromptTokens(string text, int limit) => new(Tokenize(text, addSpecial: true, parseSpecial: true).Count, AtLeast: false);

    /// <summary>Turns tokens back into text, control tokens as their text (as llama-server does).</summary>
    string Detokenize(IEnumerable<int> tokens);

    /// <summary>
    /// Validates, tokenizes and admits a request. Throws <see cref="GenerationException"/> at once, before
    /// anything streams, when the request cannot be served (bad input, queue full, prompt too long, not ready).
    /// Cancelling <paramref name="cancellationToken"/> cancels the generation: a queued request leaves the
    /// queue at once, a running one frees its slot within one scheduler step.
    /// </summary>
    GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default);

    /// <summary>Drops a session's resident KV cache (for example when the session is deleted).</summary>
    void EvictSession(string sessionKey);

    /// <summary>
    /// Stops admitting new requests (they get <see cref="GenerationErrorCode.Unavailable"/>), waits up to
    /// <paramref name="timeout"/> for running and queued generations to finish, then cancels the rest.
    /// </summary>
    Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default);
}

/// <summary>A prompt's token count; where <paramref name="AtLeast"/>, a lower bound already past the limit asked about.</summary>
public readonly record struct TokenCount(int Tokens, bool AtLeast);
