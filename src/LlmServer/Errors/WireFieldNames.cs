using LlmServer.Engine.Generation;

namespace LlmServer.Errors;

/// <summary>
/// How one front end names the engine's request fields (<see cref="GenerationField"/>) on its wire. Each front end
/// has one, and its endpoints carry it as metadata, so an engine refusal names the field its client sent.
/// </summary>
/// <param name="name">The wire's name of a field (with the list index, for one item of a list), or null where the wire has none.</param>
internal sealed class WireFieldNames(Func<GenerationField, int?, string?> name)
{
    /// <summary>The wire's name of the field an engine refusal names, when it names one.</summary>
    public string? Of(GenerationException exception) => exception.Field is { } field ? name(field, exception.FieldIndex) : null;

    /// <summary>
    /// The one rule for naming the field at fault in a message, for the wires that put it there: <c>field: message</c>
    /// (the engine's messages do not name the field, having only its own names for it), unless the message already
    /// begins by naming it (<c>field: ...</c>, <c>field is ...</c>, <c>'field' ...</c>, as the front ends' own
    /// messages do).
    /// </summary>
    public static string Prefixed(string? field, string message) =>
        field is null
        || message.StartsWith(field + ":", StringComparison.Ordinal)
        || message.StartsWith(field + " ", StringComparison.Ordinal)
        || message.StartsWith($"'{field}'", StringComparison.Ordinal)
            ? message
            : $"{field}: {message}";
}
