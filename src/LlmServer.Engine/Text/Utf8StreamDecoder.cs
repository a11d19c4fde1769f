using System.Text;

namespace LlmServer.Engine.Text;

/// <summary>
/// Turns token bytes into text incrementally. A multi-byte character split across tokens is held back until
/// its last byte arrives, so no piece ever carries a broken character.
/// </summary>
internal sealed class Utf8StreamDecoder
{
    private byte[] _pending = new byte[64];
    private int _count;

    /// <summary>Whether bytes of an unfinished character are held back.</summary>
    public bool HasPending => _count > 0;

    /// <summary>Appends bytes and returns the text that is now complete (possibly empty).</summary>
    public string Append(ReadOnlySpan<byte> bytes)
    {
        if (_count + bytes.Length > _pending.Length)
        {
            Array.Resize(ref _pending, Math.Max(_pending.Length * 2, _count + bytes.Length));
        }

        bytes.CopyTo(_pending.AsSpan(_count));
        _count += bytes.Length;
        var complete = CompletePrefixLength(_pending.AsSpan(0, _count));
        if (complete == 0)
        {
            return string.Empty;
        }

        var text = Encoding.UTF8.GetString(_pending, 0, complete);
        _pending.AsSpan(complete, _count - complete).CopyTo(_pending);
        _count -= complete;
        return text;
    }

    /// <summary>Returns whatever is left, with replacement characters for an unfinished sequence.</summary>
    public string Flush()
    {
        var text = _count == 0 ? string.Empty : Encoding.UTF8.GetString(_pending, 0, _count);
        _count = 0;
        return text;
    }

    /// <summary>Length of the longest prefix that does not end inside a multi-byte sequence.</summary>
    internal static int CompletePrefixLength(ReadOnlySpan<byte> bytes)
    {
        // A UTF-8 sequence is at most 4 bytes: only the last 3 can belong to an unfinished one.
        for (var back = 1; back <= Math.Min(3, bytes.Length); back++)
        {
            var b = bytes[^back];
            if ((b & 0xC0) == 0x80)
            {
                continue;
            }

            var needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            return needed > back ? bytes.Length - back : bytes.Length;
        }

        return bytes.Length;
    }
}
