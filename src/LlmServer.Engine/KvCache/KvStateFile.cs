using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.KvCache;

/// <summary>
/// The file of one saved state: magic and version, the model identity, the tokens, the text they stand for (UTF-8,
/// length -1 when unknown) and where the two split exactly, the state bytes, then an XxHash3 checksum of everything before it. A file that is short, from another model or fails its checksum is never used.
/// </summary>
internal static class KvStateFile
{
    private const ulong Magic = 0x0001_564B_4D4C_4C00; // "\0LLMKV", version 1
    private const int HeaderBytes = 8 + 16 + 4;
    private const int ChecksumBytes = 8;

    public static void Write(Stream destination, UInt128 model, SavedKvState saved)
    {
        var hash = new XxHash3();
        Span<byte> header = stackalloc byte[HeaderBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt128LittleEndian(header[8..], model);
        BinaryPrimitives.WriteInt32LittleEndian(header[24..], saved.Tokens.Length);
        Append(destination, hash, header);

        // Tokens as little-endian int32: the layout in memory on every platform .NET runs llama.cpp on.
        Append(destination, hash, MemoryMarshal.AsBytes(saved.Tokens.AsSpan()));
        var text = saved.Text is null ? null : Encoding.UTF8.GetBytes(saved.Text);
        Span<byte> textLength = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(textLength, text?.Length ?? -1);
        Append(destination, hash, textLength);
        Append(destination, hash, text);
        var boundaries = saved.Boundaries;
        Span<byte> count = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(count, boundaries.Length);
        Append(destination, hash, count);
        Append(destination, hash, MemoryMarshal.AsBytes(boundaries.AsSpan()));
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, saved.State.Length);
        Append(destination, hash, length);
        Append(destination, hash, saved.State);
        Span<byte> checksum = stackalloc byte[ChecksumBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(checksum, hash.GetCurrentHashAsUInt64());
        destination.Write(checksum);
    }

    /// <summary>Reads a state written by <see cref="Write"/>; on any mismatch returns null and says why.</summary>
    public static SavedKvState? TryRead(ReadOnlySpan<byte> file, string sessionKey, UInt128 model, out string? problem)
    {
        problem = null;
        if (file.Length < HeaderBytes + 8 + ChecksumBytes || BinaryPrimitives.ReadUInt64LittleEndian(file) != Magic)
        {
            problem = "not a KV state file of this version";
            return null;
        }

        var body = file[..^ChecksumBytes];
        if (XxHash3.HashToUInt64(body) != BinaryPrimitives.ReadUInt64LittleEndian(file[^ChecksumBytes..]))
        {
            problem = "checksum mismatch";
            return null;
        }

        if (BinaryPrimitives.ReadUInt128LittleEndian(file[8..]) != model)
        {
            problem = "saved by another model or KV cache type";
            return null;
        }

        var tokenCount = BinaryPrimitives.ReadInt32LittleEndian(file[24..]);
        var tokenBytes = (long)tokenCount * 4;
        if (tokenCount <= 0 || HeaderBytes + tokenBytes + 8 > body.Length)
        {
            problem = "bad token count";
            return null;
        }

        var tokens = MemoryMarshal.Cast<byte, int>(body.Slice(HeaderBytes, (int)tokenBytes)).ToArray();
        var textAt = HeaderBytes + (int)tokenBytes + 4;
        var textLength = BinaryPrimitives.ReadInt32LittleEndian(body[(textAt - 4)..]);
        if (textLength < -1 || textAt + (long)Math.Max(0, textLength) + 8 > body.Length)
        {
            problem = "bad text length";
            return null;
        }

        var text = textLength < 0 ? null : Encoding.UTF8.GetString(body.Slice(textAt, textLength));
        var boundariesAt = textAt + Math.Max(0, textLength) + 4;
        var boundaryCount = BinaryPrimitives.ReadInt32LittleEndian(body[(boundariesAt - 4)..]);
        if (boundaryCount < 0 || boundariesAt + ((long)boundaryCount * 8) + 8 > body.Length)
        {
            problem = "bad boundary count";
            return null;
        }

        var boundaries = MemoryMarshal.Cast<byte, TextTokenBoundary>(body.Slice(boundariesAt, boundaryCount * 8)).ToArray();
        var stateAt = boundariesAt + (boundaryCount * 8) + 8;
        var stateLength = BinaryPrimitives.ReadInt64LittleEndian(body[(stateAt - 8)..]);
        if (stateLength != body.Length - stateAt)
        {
            problem = "bad state length";
            return null;
        }

        return new SavedKvState(sessionKey, tokens, body[stateAt..].ToArray(), text, boundaries);
    }

    private static void Append(Stream destination, XxHash3 hash, ReadOnlySpan<byte> bytes)
    {
        hash.Append(bytes);
        destination.Write(bytes);
    }
}
