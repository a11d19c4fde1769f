using LlmServer.Engine.Threading;

namespace LlmServer.Engine.Models;

/// <summary>What the loaded GGUF says about itself, and how it was loaded.</summary>
public sealed record ModelInfo(
    string Id,
    string Path,
    string Architecture,
    string? Name,
    ulong ParameterCount,
    ulong SizeInBytes,
    int TrainingContextLength,
    int VocabularySize,
    bool HasChatTemplate,
    int SlotContextLength,
    int Slots,
    BackendInfo Backend);

/// <summary>The native library llama.cpp runs on. <see cref="Threads"/> is the decode threads chosen at start.</summary>
public sealed record BackendInfo(string Kind, string Library, string SystemInfo, int GpuLayers, int Threads)
{
    /// <summary>How the CPU threads were chosen and how many decode now; null where the engine did not say.</summary>
    public CpuThreading? Threading { get; init; }
}
