using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace LlmServer.Engine.KvCache;

/// <summary>
/// What a saved KV state depends on: the model's weights and the cache's element types. The file is fingerprinted by
/// its length and its first and last bytes (the GGUF header, tensor table and weights at both ends) rather than its
/// path or time, so a copied or moved model keeps its states and a different model never matches.
/// </summary>
internal static class ModelIdentity
{
    private const int HeadBytes = 4 * 1024 * 1024;
    private const int TailBytes = 1024 * 1024;

    public static UInt128 Compute(string modelPath, string cacheLayout)
    {
        using var file = new FileStream(modelPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var hash = new XxHash128();
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, file.Length);
        hash.Append(length);
        hash.Append(Encoding.UTF8.GetBytes(cacheLayout));
        var buffer = new byte[HeadBytes];
        hash.Append(buffer.AsSpan(0, file.ReadAtLeast(buffer, (int)Math.Min(HeadBytes, file.Length), throwOnEndOfStream: false)));
        if (file.Length > HeadBytes)
        {
            var tail = (int)Math.Min(TailBytes, file.Length - HeadBytes);
            file.Seek(-tail, SeekOrigin.End);
            hash.Append(buffer.AsSpan(0, file.ReadAtLeast(buffer.AsMemory(0, tail).Span, tail, throwOnEndOfStream: false)));
        }

        return hash.GetCurrentHashAsUInt128();
    }
}
