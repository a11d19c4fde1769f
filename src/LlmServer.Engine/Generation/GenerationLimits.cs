using System.Globalization;

namespace LlmServer.Engine.Generation;

/// <summary>
/// The sampling ranges the engine accepts: <see cref="GenerationRequestValidator"/> enforces them and <c>/props</c>
/// publishes them, so clients (the chat page) check against the same numbers instead of copies.
/// </summary>
public static class GenerationLimits
{
    public static ValueRange Temperature { get; } = new(0, 2);

    public static ValueRange TopP { get; } = new(0, 1, ExclusiveMinimum: true);

    public static ValueRange MaxTokens { get; } = new(1, null);
}

/// <summary>A range of a numeric request field; a null end is open.</summary>
public sealed record ValueRange(double? Minimum, double? Maximum, bool ExclusiveMinimum = false)
{
    public bool Contains(double value) =>
        double.IsFinite(value)
        && (Minimum is not { } min || (ExclusiveMinimum ? value > min : value >= min))
        && (Maximum is not { } max || value <= max);

    /// <summary>The range as an error message says it: "between 0 and 2", "greater than 0 and at most 1", "at least 1".</summary>
    public string Describe()
    {
        var min = Minimum?.ToString(CultureInfo.InvariantCulture);
        var max = Maximum?.ToString(CultureInfo.InvariantCulture);
        return (min, max, ExclusiveMinimum) switch
        {
            (null, null, _) => "any number",
            (null, _, _) => $"at most {max}",
            (_, null, true) => $"greater than {min}",
            (_, null, false) => $"at least {min}",
            (_, _, true) => $"greater than {min} and at most {max}",
            _ => $"between {min} and {max}",
        };
    }
}
