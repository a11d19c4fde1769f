using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Threading;

namespace LlmServer.Engine.Models;

/// <summary>Loads a GGUF into weights and one multi-sequence context, and describes what was loaded.</summary>
internal static class ModelLoader
{
    public const int MaxAutomaticSlotContext = 8192;

    /// <summary>The thread counts for <paramref name="model"/> on this machine (see <see cref="CpuThreadPlanner"/>).</summary>
    public static CpuThreading PlanThreads(ModelOptions model, string openMp)
    {
        var size = File.Exists(model.Path) ? new FileInfo(model.Path).Length : 0;
        return CpuThreadPlanner.Resolve(model.Threads, model.BatchThreads, Environment.ProcessorCount, size, openMp);
    }

    public static ModelParams CreateParameters(ModelOptions model, SchedulerOptions scheduler, int trainingContext) =>
        CreateParameters(model, scheduler, trainingContext, PlanThreads(model, OpenMpTuning.Describe()));

    public static ModelParams CreateParameters(ModelOptions model, SchedulerOptions scheduler, int trainingContext, CpuThreading threading)
    {
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
            Threads = threading.Threads,
            BatchThreads = threading.BatchThreads,
            GpuLayerCount = model.GpuLayerCount ?? (NativeApi.llama_supports_gpu_offload() ? 999 : 0),
            KVUnified = scheduler.UnifiedKvCache,
            TypeK = KvCacheType.Parse(scheduler.KvCacheType),
            TypeV = KvCacheType.Parse(scheduler.KvCacheType),
            FlashAttention = scheduler.FlashAttention ?? (KvCacheType.IsQuantized(scheduler.KvCacheType) ? true : null),
        };
    }

    /// <summary>
    /// The context the model was trained with, from the GGUF's <c>{architecture}.context_length</c>: llama.cpp stops
    /// reading hyperparameters after the vocabulary when loading vocabulary-only, so there
    /// <see cref="LLamaWeights.ContextSize"/> is 0. 0 where the GGUF does not say.
    /// </summary>
    public static int TrainingContext(LLamaWeights weights) =>
        GgufMetadata.ArchitectureInteger(weights.Metadata, "context_length") is { } length and > 0 and <= int.MaxValue ? (int)length : weights.ContextSize;

    /// <summary>Reads the GGUF metadata without building a context (vocabulary only).</summary>
    public static LLamaWeights LoadVocabularyOnly(string path) =>
        LLamaWeights.LoadFromFile(new ModelParams(path) { VocabOnly = true, GpuLayerCount = 0 });

    public static ModelInfo Describe(LLamaWeights weights, ModelOptions options, int slots, int slotContext, ModelParams parameters, CpuThreading threading)
    {
        var metadata = weights.Metadata;
        var architecture = metadata.GetValueOrDefault("general.architecture") ?? "unknown";
        var name = metadata.GetValueOrDefault("general.name");
        return new ModelInfo(
            ModelInfo.IdOf(options),
            options.Path!,
            architecture,
            name,
            weights.ParameterCount,
            weights.SizeInBytes,
            TrainingContext(weights),
            weights.Vocab.Count,
            HasChatTemplate(weights),
            slotContext,
            slots,
            DescribeBackend(parameters, threading));
    }

    public static bool HasChatTemplate(LLamaWeights weights) => ReadChatTemplate(weights) is not null;

    /// <summary>The GGUF's <c>tokenizer.chat_template</c>, or null when it has none.</summary>
    public static string? ReadChatTemplate(LLamaWeights weights) =>
        weights.Metadata.TryGetValue("tokenizer.chat_template", out var template) && !string.IsNullOrWhiteSpace(template) ? template : null;

    /// <summary>
    /// llama.cpp's system line, read once per process: <c>llama_print_system_info</c> rebuilds a static std::string
    /// on every call, so two engines loading at once (tests, embeddings beside generation) corrupted the heap.
    /// </summary>
    private static readonly Lazy<string> SystemInfo = new(
        () => (Marshal.PtrToStringAnsi(NativeApi.llama_print_system_info()) ?? string.Empty).Trim(),
        LazyThreadSafetyMode.ExecutionAndPublication);

    private static BackendInfo DescribeBackend(ModelParams parameters, CpuThreading threading)
    {
        var library = LoadedLibraryPath() ?? "unknown";
        var gpu = NativeApi.llama_supports_gpu_offload();
        var kind = gpu
            ? (library.Contains("cuda", StringComparison.OrdinalIgnoreCase) ? "CUDA" : "GPU")
            : "CPU " + (Path.GetFileName(Path.GetDirectoryName(library)) ?? "unknown");
        return new BackendInfo(kind, library, SystemInfo.Value, gpu ? parameters.GpuLayerCount : 0, parameters.Threads ?? 0)
        {
            Threading = threading,
        };
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
