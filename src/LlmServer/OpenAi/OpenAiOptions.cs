using Microsoft.Extensions.Options;

namespace LlmServer.OpenAi;

/// <summary>Configuration section <c>OpenAi</c>.</summary>
public sealed class OpenAiOptions
{
    public const string SectionName = "OpenAi";

    /// <summary>How often a queued streaming request gets an SSE comment, so proxies and clients keep the connection.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Reports every problem of the <c>OpenAi</c> section at once.</summary>
internal sealed class OpenAiOptionsValidator : IValidateOptions<OpenAiOptions>
{
    public ValidateOptionsResult Validate(string? name, OpenAiOptions options)
    {
        var errors = new List<string>();
        if (options.KeepAliveInterval <= TimeSpan.Zero)
        {
            errors.Add("OpenAi:KeepAliveInterval must be positive (for example 00:00:10).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
