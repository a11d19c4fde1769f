using System.Globalization;

namespace LlmServer.Engine.Generation;

/// <summary>
/// The ranges the engine accepts: <see cref="GenerationRequestValidator"/> enforces them, the front ends check
/// their own fields against them, and <c>/props</c> publishes them, so clients (the chat page) check against the
/// same numbers instead of copies.
/// </summary>
public static class GenerationLimits
{
    /// <summary>Most sequences in <see cref="GenerationRequest.Stop"/>.</summary>
    public const int MaxStopSequences = 16;

    public static ValueRange Temperature { get; } = new(0, 2);

    public static ValueRange TopP { get; } = new(0, 1, ExclusiveMinimum: true);

    /// <summary>0 turns top-k off.</summary>
    public static ValueRange TopK { get; } = new(0, null);

    public static ValueRange MinP { get; } = new(0, 1);

    /// <summary>The range of the frequency and the presence penalty.</summary>
    public static ValueRange Penalty { get; } = new(-2, 2);

    public static ValueRange RepeatPenalty { get; } = new(0, 10, ExclusiveMinimum: true);

    public static ValueRange PenaltyLastN { get; } = new(0, null);

    /// <summary>The range of one token's logit bias.</summary>
    public static ValueRange LogitBias { get; } = new(-100, 100);

    public static ValueRange MaxTokens { get; } = new(1, null);

    /// <summary>Choices generated for one request.</summary>
    public static ValueRange Choices { get; } = new(1, 4);

    /// <summary>Alternatives reported per generated token.</summary>
    public static ValueRange TopLogProbs { get; } = new(0, 20);
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
