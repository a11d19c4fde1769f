using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Hosting;

/// <summary>Reports every problem of the <c>Model</c> section at once.</summary>
internal sealed class ModelOptionsValidator : IValidateOptions<ModelOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Path))
        {
            errors.Add("Model:Path is not set. Pass --model PATH, set Model__Path, or put a .gguf file in models/.");
        }
        else if (!File.Exists(options.Path))
        {
            errors.Add($"Model:Path '{options.Path}' does not exist.");
        }

        if (options.GpuLayerCount is < 0)
        {
            errors.Add("Model:GpuLayerCount must be 0 or more.");
        }

        if (options.Threads < 0 || options.BatchThreads < 0)
        {
            errors.Add("Model:Threads and Model:BatchThreads must be 0 (one per core) or more.");
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

        if (options.StepTokenBudget < Math.Max(1, options.Slots))
        {
            errors.Add("Scheduler:StepTokenBudget must be at least Scheduler:Slots (one token per generating sequence).");
        }

        if (options.DefaultMaxTokens < 0)
        {
            errors.Add("Scheduler:DefaultMaxTokens must be 0 (the slot's context) or more.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
