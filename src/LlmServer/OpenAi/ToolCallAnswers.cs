namespace LlmServer.OpenAi;

/// <summary>
/// The rule the chat wires share (chat completions' <c>tool</c> messages, Anthropic's <c>tool_result</c> blocks, the
/// Responses API's <c>function_call_output</c> items) for
/// the answers to an assistant turn's tool calls: the messages right after the turn answer each of its calls, once,
/// and only its calls, before any other message; a conversation does not end with a call unanswered (a model
/// cannot go on from a call it has no result for). Each wire words its refusals with its own field names.
/// </summary>
internal sealed class ToolCallAnswers
{
    /// <summary>The calls awaiting an answer: the engine's id, and the id as the wire spells it.</summary>
    private readonly Dictionary<string, string> _pending = new(StringComparer.Ordinal);

    /// <summary>The calls awaiting an answer, as the wire spells their ids; null when none is.</summary>
    public string? Unanswered => _pending.Count == 0 ? null : string.Join(", ", _pending.Values);

    /// <summary>The engine's ids of the calls awaiting an answer.</summary>
    public IEnumerable<string> Awaiting => _pending.Keys;

    /// <summary>
    /// An assistant turn's call, which the messages after the turn must answer; false when the turn already has a
    /// call with this id (one answer could not tell them apart).
    /// </summary>
    public bool Expect(string id, string wireId) => _pending.TryAdd(id, wireId);

    /// <summary>Whether <paramref name="id"/> answers a call awaiting its answer (which it then no longer is).</summary>
    public bool Answer(string id) => _pending.Remove(id);
}
