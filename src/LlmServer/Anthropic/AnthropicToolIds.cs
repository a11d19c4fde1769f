using LlmServer.Engine.Tools;

namespace LlmServer.Anthropic;

/// <summary>
/// Tool-use ids on the Anthropic wire. Anthropic's clients expect <c>toolu_</c> ids; the engine makes OpenAI's
/// <c>call_</c> ids (or, for Mistral's templates, nine alphanumerics: the model's own where it wrote a valid one).
/// Both are spellings of one id: answers carry the <c>toolu_</c> spelling, and the ids of a request's <c>tool_use</c> and <c>tool_result</c> blocks are read
/// back into the engine's, so a round trip renders the prompt the chat API renders for the engine's id.
/// </summary>
internal static class AnthropicToolIds
{
    private const string WirePrefix = "toolu_";
    private const string EnginePrefix = "call_";

    /// <summary>The id an answer's <c>tool_use</c> block carries for the engine's call id.</summary>
    public static string ToWire(string engineId) =>
        WirePrefix + (engineId.StartsWith(EnginePrefix, StringComparison.Ordinal) ? engineId[EnginePrefix.Length..] : engineId);

    /// <summary>
    /// The engine's id for a request block's id: a <c>toolu_</c> id becomes the <c>call_</c> id it was made from
    /// (or the short id); any other id (a client's own) is used as sent.
    /// </summary>
    public static string FromWire(string wireId)
    {
        if (!wireId.StartsWith(WirePrefix, StringComparison.Ordinal))
        {
            return wireId;
        }

        var rest = wireId[WirePrefix.Length..];
        // The engine's short ids (ShortToolCallIds) travel without a prefix.
        return ShortToolCallIds.IsShort(rest) ? rest : EnginePrefix + rest;
    }
}
