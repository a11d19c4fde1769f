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
    BackendInfo Backend)
{
    /// <summary>The chat template in use: where it came from, its source and what it supports.</summary>
    public ChatTemplateInfo? ChatTemplate { get; init; }

    /// <summary>The tool-call syntax the chat template's source shows (generic without a template).</summary>
    public Tools.ToolCallFormat TemplateToolCallFormat { get; init; }

    /// <summary>The tool-call syntax the engine asks the model for and parses.</summary>
    public Tools.ToolCallFormat ToolCallFormat { get; init; }

    /// <summary>The id the model is served under: <c>Model:Id</c>, else the file's name without its extension.</summary>
    internal static string IdOf(ModelOptions options) => options.Id ?? System.IO.Path.GetFileNameWithoutExtension(options.Path!);
}

/// <summary>
/// The chat template prompts are rendered with. <see cref="Origin"/> is <c>gguf</c> (the model's own), <c>file</c>
/// (<c>Model:ChatTemplateFile</c>) or <c>fallback</c> (<c>Model:FallbackChatTemplate</c>, a built-in name with no
/// Jinja <see cref="Source"/>).
/// </summary>
public sealed record ChatTemplateInfo(string Origin, string Name, string? Source, LlmServer.Templating.Chat.ChatTemplateCapabilities? Capabilities)
{
    public const string GgufOrigin = "gguf";
    public const string FileOrigin = "file";
    public const string FallbackOrigin = "fallback";

    /// <summary>The template's model writes its reasoning in <c>&lt;think&gt;</c> blocks, which the engine can part from the answer.</summary>
    public bool WritesThinkTags => Reasoning.ReasoningStage.WritesThinkTags(Source);
}

/// <summary>The native library llama.cpp runs on. <see cref="Threads"/> is the decode threads chosen at start.</summary>
public sealed record BackendInfo(string Kind, string Library, string SystemInfo, int GpuLayers, int Threads)
{
    /// <summary>How the CPU threads were chosen and how many decode now; null where the engine did not say.</summary>
    public CpuThreading? Threading { get; init; }
}
