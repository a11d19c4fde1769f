using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>Configuration section <c>Sessions</c>.</summary>
public sealed class SessionOptions
{
    public const string SectionName = "Sessions";

    /// <summary>The SQLite file; a relative path is taken from the working directory.</summary>
    public string Database { get; set; } = "data/sessions.db";

    /// <summary>How long a generation keeps running after its last listener went away, so a client can resume it.</summary>
    public int ResumeGraceSeconds { get; set; } = 30;

    /// <summary>Longest user message, in characters.</summary>
    public int MaxMessageLength { get; set; } = 32_768;

    /// <summary>Longest system prompt, in characters.</summary>
    public int MaxSystemPromptLength { get; set; } = 32_768;

    /// <summary>Longest title, in characters.</summary>
    public int MaxTitleLength { get; set; } = 200;

    /// <summary>Most tokens a turn generates when the session sets no limit; 0 leaves it to the scheduler.</summary>
    public int DefaultMaxTokens { get; set; } = 1024;

    public TimeSpan ResumeGrace => TimeSpan.FromSeconds(ResumeGraceSeconds);
}

/// <summary>Reports every problem of the <c>Sessions</c> section at once.</summary>
internal sealed class SessionOptionsValidator : IValidateOptions<SessionOptions>
{
    public ValidateOptionsResult Validate(string? name, SessionOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Database))
        {
            errors.Add("Sessions:Database must name the SQLite file (for example data/sessions.db).");
        }
        else if (options.Database.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
        {
            errors.Add($"Sessions:Database '{options.Database}' is not a valid path.");
        }

        if (options.ResumeGraceSeconds is < 0 or > 3600)
        {
            errors.Add("Sessions:ResumeGraceSeconds must be between 0 and 3600.");
        }

        if (options.MaxMessageLength < 1)
        {
            errors.Add("Sessions:MaxMessageLength must be 1 or more.");
        }

        if (options.MaxSystemPromptLength < 0)
        {
            errors.Add("Sessions:MaxSystemPromptLength must be 0 or more.");
        }

        if (options.MaxTitleLength < 1)
        {
            errors.Add("Sessions:MaxTitleLength must be 1 or more.");
        }

        if (options.DefaultMaxTokens < 0)
        {
            errors.Add("Sessions:DefaultMaxTokens must be 0 (the scheduler's default) or more.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
