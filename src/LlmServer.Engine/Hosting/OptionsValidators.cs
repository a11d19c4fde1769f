using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Threading;
using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Hosting;

/// <summary>Reports every problem of the <c>Model</c> section at once.</summary>
internal sealed class ModelOptionsValidator : IValidateOptions<ModelOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelOptions options)
    {
        // Model:Path is not checked here: the server finds (or downloads) the model after every setting is valid,
        // and that is where its file is checked (ModelPathResolver).
        var errors = new List<string>();
        if (options.GpuLayerCount is < 0)
        {
            errors.Add("Model:GpuLayerCount must be 0 or more.");
        }

        foreach (var (key, setting) in new[] { ("Model:Threads", options.Threads), ("Model:BatchThreads", options.BatchThreads) })
        {
            if (setting.Invalid is { } text)
            {
                errors.Add($"{key} '{text}' must be 'auto' or a number of threads from 1 to {ThreadSetting.MaxThreads}.");
            }
        }

        if (string.IsNullOrWhiteSpace(options.FallbackChatTemplate))
        {
            errors.Add("Model:FallbackChatTemplate must name a template (for example 'plain' or 'chatml').");
        }

        if (!string.IsNullOrWhiteSpace(options.ChatTemplateFile) && !File.Exists(options.ChatTemplateFile))
        {
            errors.Add($"Model:ChatTemplateFile '{options.ChatTemplateFile}' does not exist.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Reports every problem of the <c>Scheduler</c> section at once.</summary>
internal sealed class SchedulerOptionsValidator : IValidateOptions<SchedulerOptions>
{
    public ValidateOptionsResult Validate(string? name, SchedulerOptions options)
    {
        var errors = new List<string>();
        if (options.Slots is < 1 or > 64)
        {
            errors.Add("Scheduler:Slots must be between 1 and 64.");
        }

        if (options.ContextSize < 0)
        {
            errors.Add("Scheduler:ContextSize must be 0 (automatic) or more.");
        }
        else if (options.ContextSize > 0 && options.Slots > 0 && options.ContextSize / options.Slots < 64)
        {
            errors.Add($"Scheduler:ContextSize {options.ContextSize} leaves fewer than 64 tokens per slot for {options.Slots} slots.");
        }

        if (options.MaxQueue < 0)
        {
            errors.Add("Scheduler:MaxQueue must be 0 or more.");
        }

        if (options.MaxBatchQueue < 0)
        {
            errors.Add("Scheduler:MaxBatchQueue must be 0 or more.");
        }

        if (options.StepTokenBudget < Math.Max(1, options.Slots))
        {
            errors.Add("Scheduler:StepTokenBudget must be at least Scheduler:Slots (one token per generating sequence).");
        }

        if (options.TargetStepMs is < 0 or > 60_000)
        {
            errors.Add("Scheduler:TargetStepMs must be between 0 (no time target) and 60000.");
        }

        if (options.MinPromptShare is < 0 or > 0.95 || double.IsNaN(options.MinPromptShare))
        {
            errors.Add("Scheduler:MinPromptShare must be between 0 (keep to the time target) and 0.95.");
        }

        // Above the token budget is allowed: the budget, the hard cap, bounds every chunk anyway, and a budget set
        // below the default chunk must not fail over an option its owner never set.
        if (options.MinPromptChunk < 1)
        {
            errors.Add("Scheduler:MinPromptChunk must be at least 1.");
        }

        if (options.MaxLongPrefills < 1)
        {
            errors.Add("Scheduler:MaxLongPrefills must be at least 1.");
        }

        if (options.LongPromptTokens < 1)
        {
            errors.Add("Scheduler:LongPromptTokens must be at least 1.");
        }

        if (options.BatchHoldMaxSteps is < 0 or > 4096)
        {
            errors.Add("Scheduler:BatchHoldMaxSteps must be 0 (no hold) to 4096.");
        }

        if (options.DefaultMaxTokens < 0)
        {
            errors.Add("Scheduler:DefaultMaxTokens must be 0 (the slot's context) or more.");
        }

        if (!Models.KvCacheType.IsKnown(options.KvCacheType))
        {
            errors.Add($"Scheduler:KvCacheType '{options.KvCacheType}' is not a KV cache type; use one of {string.Join(", ", Models.KvCacheType.Names)}.");
        }
        else if (Models.KvCacheType.IsQuantized(options.KvCacheType) && options.FlashAttention == false)
        {
            errors.Add($"Scheduler:KvCacheType '{options.KvCacheType}' is quantized, and llama.cpp needs flash attention for a quantized V cache: leave Scheduler:FlashAttention unset (or true), or use f16.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Reports every problem of the disk KV cache's settings (section <c>Sessions</c>) at once.</summary>
internal sealed class KvCacheOptionsValidator : IValidateOptions<KvCache.KvCacheOptions>
{
    public ValidateOptionsResult Validate(string? name, KvCache.KvCacheOptions options)
    {
        var errors = new List<string>();
        if (options.Enabled && options.ResolvedDirectory.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
        {
            errors.Add($"Sessions:KvCacheDirectory '{options.ResolvedDirectory}' is not a valid path.");
        }

        if (options.KvCacheMaxBytes < 1)
        {
            errors.Add("Sessions:KvCacheMaxBytes must be at least 1.");
        }

        if (options.KvCacheWriteQueue < 1)
        {
            errors.Add("Sessions:KvCacheWriteQueue must be at least 1.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
