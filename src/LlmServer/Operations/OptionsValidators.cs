using LlmServer.Operations.Limits;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations;

/// <summary>Reports every problem of the <c>Server</c> section at once.</summary>
internal sealed class ServerOptionsValidator : IValidateOptions<ServerOptions>
{
    private const int MaxDrainSeconds = 86_400;

    public ValidateOptionsResult Validate(string? name, ServerOptions options)
    {
        var errors = new List<string>();
        if (options.MaxRequestBodyBytes < 1024)
        {
            errors.Add("Server:MaxRequestBodyBytes must be at least 1024.");
        }

        if (options.DrainSeconds is < 0 or > MaxDrainSeconds)
        {
            // Timers (the drain's, the host's shutdown timeout) take at most about 49 days.
            errors.Add($"Server:DrainSeconds must be 0 to {MaxDrainSeconds} (a day).");
        }

        if (options.StalledClientSeconds is < 1 or > MaxDrainSeconds)
        {
            errors.Add($"Server:StalledClientSeconds must be 1 to {MaxDrainSeconds} (a day).");
        }

        foreach (var origin in options.CorsOrigins)
        {
            if (origin != "*" && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.AbsolutePath == "/"))
            {
                errors.Add($"Server:CorsOrigins entry '{origin}' must be '*' or an origin such as 'https://chat.example.com' (scheme, host, port; no path).");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Reports every problem of the <c>Limits</c> section at once.</summary>
internal sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions options)
    {
        var errors = new List<string>();
        if (options.RequestsPerMinute < 0)
        {
            errors.Add("Limits:RequestsPerMinute must be 0 (no limit) or more.");
        }

        if (options.ConcurrentGenerationsPerKey < 0)
        {
            errors.Add("Limits:ConcurrentGenerationsPerKey must be 0 (no limit) or more.");
        }

        if (options.OpenResponsesPerKey < 0)
        {
            errors.Add("Limits:OpenResponsesPerKey must be 0 (four times Limits:ConcurrentGenerationsPerKey) or more.");
        }
        else if (options.OpenResponsesPerKey > 0 && options.OpenResponsesPerKey < options.ConcurrentGenerationsPerKey)
        {
            // Every running generation but a session turn whose client left keeps its response open.
            errors.Add($"Limits:OpenResponsesPerKey ({options.OpenResponsesPerKey}) must be at least Limits:ConcurrentGenerationsPerKey ({options.ConcurrentGenerationsPerKey}): each running generation keeps a response open.");
        }

        if (options.MaxPromptTokens < 0)
        {
            errors.Add("Limits:MaxPromptTokens must be 0 (no limit) or more.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
