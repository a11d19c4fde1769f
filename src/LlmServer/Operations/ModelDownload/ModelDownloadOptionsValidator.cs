using Microsoft.Extensions.Options;

namespace LlmServer.Operations.ModelDownload;

/// <summary>
/// Reports every problem of the <c>Model:Download</c> section at once, at start: a malformed SHA-256 or URL is
/// found before a download of hundreds of megabytes, not after it. The download's own settings are checked only
/// while it is enabled; the models folder is where the server looks for a GGUF either way.
/// </summary>
internal sealed class ModelDownloadOptionsValidator : IValidateOptions<ModelDownloadOptions>
{
    private const int MaxStallSeconds = 86_400;

    private const int Sha256HexDigits = 64;

    public ValidateOptionsResult Validate(string? name, ModelDownloadOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Directory))
        {
            errors.Add("Model:Download:Directory must name the models folder (by default 'models').");
        }

        if (options.Enabled)
        {
            if (!Uri.TryCreate(options.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            {
                errors.Add($"Model:Download:Url '{options.Url}' must be an http(s) URL.");
            }

            if (!string.IsNullOrWhiteSpace(options.Sha256) && !IsSha256(options.Sha256.Trim()))
            {
                errors.Add($"Model:Download:Sha256 '{options.Sha256}' must be {Sha256HexDigits} hexadecimal digits (or empty: not verified).");
            }

            if (options.FileName is { } file && file.Trim() is { Length: > 0 } trimmed
                && (trimmed.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || trimmed is "." or ".."))
            {
                errors.Add($"Model:Download:FileName '{file}' must be a file name, without a folder.");
            }

            if (options.Attempts < 1)
            {
                errors.Add("Model:Download:Attempts must be 1 or more.");
            }

            if (options.StallSeconds is < 1 or > MaxStallSeconds)
            {
                errors.Add($"Model:Download:StallSeconds must be 1 to {MaxStallSeconds} (a day).");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static bool IsSha256(string text) =>
        text.Length == Sha256HexDigits && text.All(char.IsAsciiHexDigit);
}
