namespace LlmServer.Engine.KvCache;

/// <summary>
/// The disk KV cache's settings, read from the <c>Sessions</c> configuration section (it serves server-kept
/// conversations): an idle session's KV state is written here when its slot is taken, and read back on its next turn.
/// </summary>
public sealed class KvCacheOptions
{
    public const string SectionName = "Sessions";

    /// <summary>
    /// Folder of the saved states (relative to the working directory; created). Unset: <c>kv-cache</c> beside the
    /// sessions database (<c>Sessions:Database</c>). Empty turns the cache off.
    /// </summary>
    public string? KvCacheDirectory { get; set; }

    /// <summary>The sessions database (<c>Sessions:Database</c>), read only to place the default folder beside it.</summary>
    public string Database { get; set; } = "data/sessions.db";

    /// <summary>Most bytes the folder may hold; the least recently used states are deleted beyond it.</summary>
    public long KvCacheMaxBytes { get; set; } = 4L * 1024 * 1024 * 1024;

    /// <summary>States waiting to be written; a save that finds the queue full is skipped (that session prefills again).</summary>
    public int KvCacheWriteQueue { get; set; } = 8;

    public bool Enabled => KvCacheDirectory is null || !string.IsNullOrWhiteSpace(KvCacheDirectory);

    /// <summary>The folder in use.</summary>
    public string ResolvedDirectory =>
        KvCacheDirectory is { Length: > 0 } directory ? directory : Path.Combine(Path.GetDirectoryName(Database) ?? string.Empty, "kv-cache");
}
