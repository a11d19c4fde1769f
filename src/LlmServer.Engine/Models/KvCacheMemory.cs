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
            || GgufMetadata.Integer(metadata, arch + ".block_count") is not { } layers
            || GgufMetadata.Integer(metadata, arch + ".embedding_length") is not { } embedding
            || GgufMetadata.Integer(metadata, arch + ".attention.head_count") is not { } heads
            || heads == 0)
        {
            return null;
        }

        var kvHeads = GgufMetadata.Integer(metadata, arch + ".attention.head_count_kv") ?? heads;
        var keyLength = GgufMetadata.Integer(metadata, arch + ".attention.key_length") ?? (embedding / heads);
        var valueLength = GgufMetadata.Integer(metadata, arch + ".attention.value_length") ?? (embedding / heads);
        var valuesPerCell = layers * kvHeads * (keyLength + valueLength);
        return (long)(valuesPerCell * cells * KvCacheType.BytesPerValue(cacheType));
    }

    /// <summary>
    /// Refuses a quantized cache type whose blocks do not divide the model's attention head size (llama.cpp aborts the
    /// process on such a model at the first decode instead of refusing the context).
    /// </summary>
    public static void EnsureFits(IReadOnlyDictionary<string, string> metadata, string cacheType)
    {
        var block = KvCacheType.BlockValues(cacheType);
        if (block == 1
            || !metadata.TryGetValue("general.architecture", out var arch)
            || GgufMetadata.Integer(metadata, arch + ".embedding_length") is not { } embedding
            || GgufMetadata.Integer(metadata, arch + ".attention.head_count") is not { } heads
            || heads == 0)
        {
            return;
        }

        var keyLength = GgufMetadata.Integer(metadata, arch + ".attention.key_length") ?? (embedding / heads);
        var valueLength = GgufMetadata.Integer(metadata, arch + ".attention.value_length") ?? (embedding / heads);
        if (keyLength % block != 0 || valueLength % block != 0)
        {
            throw new InvalidOperationException(
                $"Scheduler:KvCacheType '{cacheType}' stores blocks of {block} values, but this model's attention heads hold {keyLength} (K) and {valueLength} (V) values. Use f16, bf16 or f32 for this model.");
        }
    }
}
