using System.Globalization;

namespace LlmServer.Engine.Models;

/// <summary>
/// The KV cache's size from the model's hyperparameters, as llama.cpp allocates it: per layer and per cell, one K
/// and one V row of <c>key_length x head_count_kv</c> (and <c>value_length x head_count_kv</c>) values.
/// </summary>
internal static class KvCacheMemory
{
    /// <summary>Bytes for <paramref name="cells"/> cells, or null when the GGUF lacks a plain value for a needed key.</summary>
    public static long? Estimate(IReadOnlyDictionary<string, string> metadata, long cells, string cacheType)
    {
        if (!metadata.TryGetValue("general.architecture", out var arch)
            || Read(metadata, arch + ".block_count") is not { } layers
            || Read(metadata, arch + ".embedding_length") is not { } embedding
            || Read(metadata, arch + ".attention.head_count") is not { } heads
            || heads == 0)
        {
            return null;
        }

        var kvHeads = Read(metadata, arch + ".attention.head_count_kv") ?? heads;
        var keyLength = Read(metadata, arch + ".attention.key_length") ?? (embedding / heads);
        var valueLength = Read(metadata, arch + ".attention.value_length") ?? (embedding / heads);
        var valuesPerCell = layers * kvHeads * (keyLength + valueLength);
        return (long)(valuesPerCell * cells * KvCacheType.BytesPerValue(cacheType));
    }

    // Per-layer arrays (models whose layers differ) are not plain numbers: then there is no estimate.
    private static long? Read(IReadOnlyDictionary<string, string> metadata, string key) =>
        metadata.TryGetValue(key, out var text) && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;
}
