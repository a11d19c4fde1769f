using LlmServer.Engine.Generation;

namespace LlmServer.Errors;

/// <summary>
/// How one front end names the engine's request fields (<see cref="GenerationField"/>) on its wire. Each front end
/// has one, and its endpoints carry it as metadata, so an engine refusal names the field its client sent (in its
/// message too, where the wire puts it there: <see cref="GenerationException.Prefixed"/>).
/// </summary>
/// <param name="name">
/// The wire's name of a field (with the list index, for one item of a list, and the call's index, for a tool call's
/// arguments), or null where the wire has none.
/// </param>
internal sealed class WireFieldNames(Func<GenerationField, int?, int?, string?> name)
{
    /// <summary>The wire's name of the field an engine refusal names, when it names one.</summary>
    public string? Of(GenerationException exception) => exception.Field is { } field ? name(field, exception.FieldIndex, exception.CallIndex) : null;
}
