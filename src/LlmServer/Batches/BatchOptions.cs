using Microsoft.Extensions.Options;

namespace LlmServer.Batches;

/// <summary>Configuration section <c>Batches</c>. Files and batches live in the sessions database (<c>Sessions:Database</c>).</summary>
public sealed class BatchOptions
{
    public const string SectionName = "Batches";

    /// <summary>Largest uploaded file.</summary>
    public long MaxFileBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Most request lines in one batch input file.</summary>
    public int MaxLines { get; set; } = 50_000;

    /// <summary>Batch requests handed to the engine at once (in its batch lane).</summary>
    public int MaxRunning { get; set; } = 4;
}

/// <summary>Reports every problem of the <c>Batches</c> section at once.</summary>
internal sealed class BatchOptionsValidator : IValidateOptions<BatchOptions>
{
    public ValidateOptionsResult Validate(string? name, BatchOptions options)
    {
        var errors = new List<string>();
        if (options.MaxFileBytes < 1024)
        {
            errors.Add("Batches:MaxFileBytes must be at least 1024.");
        }

        if (options.MaxLines < 1)
        {
            errors.Add("Batches:MaxLines must be at least 1.");
        }

        if (options.MaxRunning is < 1 or > 256)
        {
            errors.Add("Batches:MaxRunning must be between 1 and 256.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
