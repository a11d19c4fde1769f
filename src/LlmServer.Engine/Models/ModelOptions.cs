namespace LlmServer.Engine.Models;

/// <summary>Configuration section <c>Model</c>.</summary>
public sealed class ModelOptions
{
    public const string SectionName = "Model";

    /// <summary>Path of the GGUF file to serve (<c>--model</c> on the command line).</summary>
    public string? Path { get; set; }

    /// <summary>Id the API reports for the model; defaults to the file name without extension.</summary>
    public string? Id { get; set; }

    /// <summary>Layers to offload to the GPU; <c>null</c> means all when a GPU backend is loaded, 0 on CPU.</summary>
    public int? GpuLayerCount { get; set; }

    /// <summary>Threads for generation; 0 means one per core.</summary>
    public int Threads { get; set; }

    /// <summary>Threads for prompt processing; 0 means one per core.</summary>
    public int BatchThreads { get; set; }

    /// <summary>
    /// Template for models without <c>tokenizer.chat_template</c>: a llama.cpp built-in template name
    /// (<c>chatml</c>, <c>llama2</c>, <c>phi3</c>, ...) or <c>plain</c> for "role: content" lines.
    /// </summary>
    public string FallbackChatTemplate { get; set; } = "plain";

    /// <summary>
    /// A Jinja chat template file that replaces the model's <c>tokenizer.chat_template</c> (for a model that ships
    /// none, or a fixed version of its template).
    /// </summary>
    public string? ChatTemplateFile { get; set; }

    /// <summary>Use the fallback template even when the model has its own.</summary>
    public bool ForceFallbackChatTemplate { get; set; }
}
