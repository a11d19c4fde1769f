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
    BackendInfo Backend)
{
    /// <summary>The tool-call syntax the chat template's source shows (generic without a template).</summary>
    public Tools.ToolCallFormat TemplateToolCallFormat { get; init; }

    /// <summary>The tool-call syntax the engine asks the model for and parses.</summary>
    public Tools.ToolCallFormat ToolCallFormat { get; init; }
}

/// <summary>The native library llama.cpp runs on.</summary>
public sealed record BackendInfo(string Kind, string Library, string SystemInfo, int GpuLayers, int Threads);
