using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Auth;

/// <summary>Reports every problem of the <c>Auth</c> section at once.</summary>
internal sealed class ApiKeyOptionsValidator : IValidateOptions<ApiKeyOptions>
{
    public const int MinimumKeyLength = 16;

    public ValidateOptionsResult Validate(string? name, ApiKeyOptions options)
    {
        var errors = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.ApiKeysFile) && !File.Exists(options.ApiKeysFile))
        {
            errors.Add($"Auth:ApiKeysFile '{Path.GetFullPath(options.ApiKeysFile)}' does not exist.");
        }
        else
        {
            var index = 0;
            foreach (var key in ApiKeyStore.ReadKeys(options))
            {
                index++;
                if (key.Length < MinimumKeyLength)
                {
                    errors.Add($"API key #{index} is {key.Length} characters long; use at least {MinimumKeyLength} (for example `openssl rand -hex 24`).");
                }
                else if (key.Any(char.IsWhiteSpace))
                {
                    errors.Add($"API key #{index} contains white space.");
                }
            }
        }

        foreach (var path in options.ProtectedPaths ?? [])
        {
            if (!path.StartsWith('/'))
            {
                errors.Add($"Auth:ProtectedPaths entry '{path}' must start with '/'.");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
