using LlmServer.Engine.Generation;

namespace LlmServer.Sessions;

/// <summary>
/// Argument checks shared by the hub and the REST mirror; each failure is an <c>invalid_argument</c>. Lengths are in
/// <see cref="TextLength"/>'s characters.
/// </summary>
internal static class SessionValidation
{
    private const int MaxIdLength = 128;

    public static void SessionId(string? id)
    {
        if (string.IsNullOrWhiteSpace(id))
        {
            throw SessionException.Invalid("sessionId", "sessionId is required");
        }

        if (TextLength.Exceeds(id, MaxIdLength))
        {
            throw SessionException.Invalid("sessionId", $"sessionId is longer than {MaxIdLength} characters");
        }
    }

    public static string MessageText(string? text, SessionOptions options, string parameter)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw SessionException.Invalid(parameter, $"{parameter} must not be empty");
        }

        return TextLength.Exceeds(text, options.MaxMessageLength)
            ? throw SessionException.Invalid(parameter, $"{parameter} is {TextLength.Of(text)} characters; the limit is {options.MaxMessageLength}")
            : text;
    }

    public static string Title(string? title, SessionOptions options)
    {
        var trimmed = title?.Trim();
        if (string.IsNullOrEmpty(trimmed))
        {
            throw SessionException.Invalid("title", "title must not be empty");
        }

        return TextLength.Exceeds(trimmed, options.MaxTitleLength)
            ? throw SessionException.Invalid("title", $"title is {TextLength.Of(trimmed)} characters; the limit is {options.MaxTitleLength}")
            : trimmed;
    }

    public static void SystemPrompt(string? systemPrompt, SessionOptions options)
    {
        if (systemPrompt is not null && TextLength.Exceeds(systemPrompt, options.MaxSystemPromptLength))
        {
            throw SessionException.Invalid("systemPrompt", $"systemPrompt is {TextLength.Of(systemPrompt)} characters; the limit is {options.MaxSystemPromptLength}");
        }
    }

    public static void Settings(SessionSettings? settings)
    {
        if (settings is null)
        {
            return;
        }

        // The engine's ranges, under the sessions' own field names.
        var errors = new List<string>();
        Check(settings.Temperature, GenerationLimits.Temperature, "settings.temperature", errors);
        Check(settings.TopP, GenerationLimits.TopP, "settings.topP", errors);
        Check(settings.MaxTokens, GenerationLimits.MaxTokens, "settings.maxTokens", errors);
        if (settings.Seed is < 0 or > uint.MaxValue)
        {
            errors.Add($"settings.seed must be between 0 and {uint.MaxValue}");
        }

        if (errors.Count > 0)
        {
            throw SessionException.Invalid("settings", string.Join("; ", errors));
        }
    }

    private static void Check(double? value, ValueRange range, string name, List<string> errors)
    {
        if (value is { } v && !range.Contains(v))
        {
            errors.Add($"{name} must be {range.Describe()}");
        }
    }
}
