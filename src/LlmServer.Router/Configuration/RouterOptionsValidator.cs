using Microsoft.Extensions.Options;

namespace LlmServer.Router.Configuration;

/// <summary>Checks every router setting at start and on each reload, and reports every problem at once.</summary>
internal sealed class RouterOptionsValidator : IValidateOptions<RouterOptions>
{
    // A replica's list is read into one buffer, which a gibibyte keeps well inside what an array holds.
    private const int MaxSessionListBytes = 1024 * 1024 * 1024;

    public ValidateOptionsResult Validate(string? name, RouterOptions options)
    {
        var errors = new List<string>();
        for (var i = 0; i < options.Replicas.Count; i++)
        {
            var replica = options.Replicas[i];
            if (!Uri.TryCreate(replica, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                errors.Add($"Router:Replicas:{i} ('{replica}') must be an absolute http or https address.");
            }
        }

        if (options.Replicas.Distinct(StringComparer.OrdinalIgnoreCase).Count() != options.Replicas.Count)
        {
            errors.Add("Router:Replicas lists a replica more than once.");
        }

        Positive(errors, options.HealthCheckInterval, "HealthCheckInterval");
        Positive(errors, options.HealthCheckTimeout, "HealthCheckTimeout");
        Positive(errors, options.LoadPollInterval, "LoadPollInterval");
        Positive(errors, options.ActivityTimeout, "ActivityTimeout");
        Positive(errors, options.RetryAfter, "RetryAfter");
        Positive(errors, options.SessionListTimeout, "SessionListTimeout");
        if (!(options.LoadFactor >= 1))
        {
            errors.Add($"Router:LoadFactor must be at least 1 (it is {options.LoadFactor}).");
        }

        if (options.MinimumSpillLoad < 0)
        {
            errors.Add($"Router:MinimumSpillLoad must be 0 or more (it is {options.MinimumSpillLoad}).");
        }

        if (options.SessionMapCapacity < 1)
        {
            errors.Add($"Router:SessionMapCapacity must be at least 1 (it is {options.SessionMapCapacity}).");
        }

        if (options.SessionListMaxBytes is < 1 or > MaxSessionListBytes)
        {
            errors.Add($"Router:SessionListMaxBytes must be between 1 and {MaxSessionListBytes} (it is {options.SessionListMaxBytes}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Positive(List<string> errors, TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            errors.Add($"Router:{name} must be more than zero (it is {value}).");
        }
    }
}
