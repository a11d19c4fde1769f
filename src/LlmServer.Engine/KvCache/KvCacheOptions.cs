namespace LlmServer.Engine.KvCache;

/// <summary>
/// The disk KV cache's settings, read from the <c>Sessions</c> configuration section (it serves server-kept
/// conversations): an idle session's KV state is written here when its slot is taken, and read back on its next turn.
/// </summary>
public sealed class KvCacheOptions
{
    public const string SectionName = "Sessions";

    /// <summary>Folder of the saved states (relative to the working directory; created). Empty turns the cache off.</summary>
    public string? KvCacheDirectory { get; set; } = "data/kv-cache";

    /// <summary>Most bytes the folder may hold; the least recently used states are deleted beyond it.</summary>
    public long KvCacheMaxBytes { get; set; } = 4L * 1024 * 1024 * 1024;

    /// <summary>States waiting to be written; a save that finds the queue full is skipped (that session prefills again).</summary>
    public int KvCacheWriteQueue { get; set; } = 8;

    public bool Enabled => !string.IsNullOrWhiteSpace(KvCacheDirectory);
}
