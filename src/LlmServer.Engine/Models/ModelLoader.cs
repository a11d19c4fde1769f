using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Models;

/// <summary>Loads a GGUF into weights and one multi-sequence context, and describes what was loaded.</summary>
internal static class ModelLoader
{
    public const int MaxAutomaticSlotContext = 4096;

    public static ModelParams CreateParameters(ModelOptions model, SchedulerOptions scheduler, int trainingContext)
    {
        var threads = model.Threads > 0 ? model.Threads : Environment.ProcessorCount;
        var batchThreads = model.BatchThreads > 0 ? model.BatchThreads : Environment.ProcessorCount;
        var contextSize = scheduler.ContextSize > 0
            ? scheduler.ContextSize
            : scheduler.Slots * Math.Min(trainingContext > 0 ? trainingContext : MaxAutomaticSlotContext, MaxAutomaticSlotContext);
        return new ModelParams(model.Path!)
        {
            ContextSize = (uint)contextSize,
            SeqMax = (uint)scheduler.Slots,

            // One step holds a token per slot plus the prompt budget.
            BatchSize = (uint)(scheduler.StepTokenBudget + scheduler.Slots),
            UBatchSize = 512,
            Threads = threads,
            BatchThreads = batchThreads,
            GpuLayerCount = model.GpuLayerCount ?? (NativeApi.llama_supports_gpu_offload() ? 999 : 0),
            KVUnified = scheduler.UnifiedKvCache,
        };
    }

    /// <summary>Reads the GGUF metadata without building a context (vocabulary only).</summary>
    public static LLamaWeights LoadVocabularyOnly(string path) =>
        LLamaWeights.LoadFromFile(new ModelParams(path) { VocabOnly = true, GpuLayerCount = 0 });

    public static ModelInfo Describe(LLamaWeights weights, ModelOptions options, int slots, int slotContext, ModelParams parameters)
    {
        var metadata = weights.Metadata;
        var architecture = metadata.GetValueOrDefault("general.architecture") ?? "unknown";
        var name = metadata.GetValueOrDefault("general.name");
        return new ModelInfo(
            options.Id ?? Path.GetFileNameWithoutExtension(options.Path!),
            options.Path!,
            architecture,
            name,
            weights.ParameterCount,
            weights.SizeInBytes,
            weights.ContextSize,
            weights.Vocab.Count,
            HasChatTemplate(weights),
            slotContext,
            slots,
            DescribeBackend(parameters));
    }

    public static bool HasChatTemplate(LLamaWeights weights) => ReadChatTemplate(weights) is not null;

    /// <summary>The GGUF's <c>tokenizer.chat_template</c>, or null when it has none.</summary>
    public static string? ReadChatTemplate(LLamaWeights weights) =>
        weights.Metadata.TryGetValue("tokenizer.chat_template", out var template) && !string.IsNullOrWhiteSpace(template) ? template : null;

    private static BackendInfo DescribeBackend(ModelParams parameters)
    {
        var library = LoadedLibraryPath() ?? "unknown";
        var gpu = NativeApi.llama_supports_gpu_offload();
        var kind = gpu
            ? (library.Contains("cuda", StringComparison.OrdinalIgnoreCase) ? "CUDA" : "GPU")
            : "CPU " + (Path.GetFileName(Path.GetDirectoryName(library)) ?? "unknown");
        var systemInfo = Marshal.PtrToStringAnsi(NativeApi.llama_print_system_info()) ?? string.Empty;
        return new BackendInfo(kind, library, systemInfo.Trim(), gpu ? parameters.GpuLayerCount : 0, parameters.Threads ?? 0);
    }

    /// <summary>The libllama the process mapped (Linux): it tells which CPU variant (avx2, avx512, ...) was picked.</summary>
    private static string? LoadedLibraryPath()
    {
        const string Maps = "/proc/self/maps";
        if (!File.Exists(Maps))
        {
            return null;
        }

        foreach (var line in File.ReadLines(Maps))
        {
            var at = line.IndexOf('/', StringComparison.Ordinal);
            if (at >= 0 && line.Contains("libllama", StringComparison.Ordinal))
            {
                return line[at..];
            }
        }

        return null;
    }
}
