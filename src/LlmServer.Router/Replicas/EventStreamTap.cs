using System.Buffers.Text;

namespace LlmServer.Router.Replicas;

/// <summary>
/// The proxied body of an event stream, passed on as it is, noting the number of the last event the client got: the
/// sessions stream's <c>id:</c> line, the Responses stream's <c>sequence_number</c> (the replicas write it right after
/// <c>type</c>, within the first bytes of the line). An event the router adds after the stream numbers itself after it.
/// </summary>
internal sealed class EventStreamTap(Stream inner) : Stream
{
    // Enough of a line for "data: {"type":"response.function_call_arguments.delta","sequence_number":N".
    private const int PrefixBytes = 128;

    private static readonly byte[] IdField = "id: "u8.ToArray();
    private static readonly byte[] SequenceNumberName = "\"sequence_number\":"u8.ToArray();

    private readonly byte[] _prefix = new byte[PrefixBytes];
    private int _prefixLength;

    /// <summary>The last <c>id:</c> line's number, or null when none passed.</summary>
    public long? LastId { get; private set; }

    /// <summary>The last <c>sequence_number</c> passed, or null when none did.</summary>
    public long? LastSequenceNumber { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        inner.Write(buffer);
        Observe(buffer);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await inner.WriteAsync(buffer, cancellationToken);
        Observe(buffer.Span);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    private void Observe(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            if (b == (byte)'\n')
            {
                EndLine(_prefix.AsSpan(0, _prefixLength));
                _prefixLength = 0;
            }
            else if (_prefixLength < PrefixBytes)
            {
                _prefix[_prefixLength++] = b;
            }
        }
    }

    private void EndLine(ReadOnlySpan<byte> line)
    {
        if (line.StartsWith(IdField))
        {
            var value = line[IdField.Length..].TrimEnd((byte)'\r');
            if (Utf8Parser.TryParse(value, out long id, out var consumed) && consumed == value.Length)
            {
                LastId = id;
            }
        }
        else if (line.StartsWith("data:"u8) && line.IndexOf(SequenceNumberName) is var at and >= 0
                 && Utf8Parser.TryParse(line[(at + SequenceNumberName.Length)..], out long sequence, out _))
        {
            LastSequenceNumber = sequence;
        }
    }
}
