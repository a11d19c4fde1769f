using Microsoft.Extensions.Options;

namespace LlmServer.Responses;

/// <summary>Configuration section <c>Responses</c>: the short-lived store behind <c>previous_response_id</c>.</summary>
public sealed class ResponsesOptions
{
    public const string SectionName = "Responses";

    /// <summary>Most stored responses; the oldest is dropped beyond it.</summary>
    public int MaxStored { get; set; } = 1000;

    /// <summary>How long a stored response can be fetched or continued.</summary>
    public TimeSpan StoreTtl { get; set; } = TimeSpan.FromHours(1);
}

/// <summary>Reports every problem of the <c>Responses</c> section at once.</summary>
internal sealed class ResponsesOptionsValidator : IValidateOptions<ResponsesOptions>
{
    public ValidateOptionsResult Validate(string? name, ResponsesOptions options)
    {
        var errors = new List<string>();
        if (options.MaxStored < 0)
        {
            errors.Add("Responses:MaxStored must be 0 (store nothing) or more.");
        }

        if (options.StoreTtl <= TimeSpan.Zero)
        {
            errors.Add("Responses:StoreTtl must be positive (for example 01:00:00).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
