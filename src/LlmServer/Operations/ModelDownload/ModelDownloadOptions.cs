namespace LlmServer.Operations.ModelDownload;

/// <summary>Configuration section <c>Model:Download</c>: the model fetched on first run when none is configured or present.</summary>
public sealed class ModelDownloadOptions
{
    public const string SectionName = "Model:Download";

    /// <summary>Qwen2.5-0.5B-Instruct, Q4_K_M (about 470 MiB, Apache-2.0): small, instruction-tuned, has a chat template.</summary>
    public const string DefaultUrl = "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf";

    /// <summary>Download a model when none is configured and the models folder has no GGUF.</summary>
    public bool Enabled { get; set; } = true;

    public string Url { get; set; } = DefaultUrl;

    /// <summary>Expected SHA-256 of the file (hex). Empty: the download is not verified (a warning says so).</summary>
    public string? Sha256 { get; set; }

    /// <summary>File name in the models folder; empty: the last segment of <see cref="Url"/>.</summary>
    public string? FileName { get; set; }

    /// <summary>The models folder, relative to the working directory; the server also looks here for a GGUF to serve.</summary>
    public string Directory { get; set; } = "models";

    /// <summary>Tries before giving up; each retry resumes where the last one stopped.</summary>
    public int Attempts { get; set; } = 4;

    /// <summary>A connection that delivers nothing for this long counts as broken.</summary>
    public int StallSeconds { get; set; } = 30;
}
