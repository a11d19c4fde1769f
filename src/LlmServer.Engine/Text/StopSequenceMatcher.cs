namespace LlmServer.Engine.Text;

/// <summary>
/// Finds stop sequences in streamed text even when they span token boundaries. Text that could still be the
/// start of a stop sequence is held back; a matched stop sequence is never emitted.
/// </summary>
internal sealed class StopSequenceMatcher(IReadOnlyList<string> stops)
{
    private string _held = string.Empty;

    public bool HasStops => stops.Count > 0;

    /// <summary>The stop sequence that ended the text, once one has.</summary>
    public string? Matched { get; private set; }

    /// <summary>Adds text; returns what may be emitted now and whether a stop sequence ended the text.</summary>
    public (string Emit, bool Stopped) Push(string text)
    {
        if (stops.Count == 0)
        {
            return (text, false);
        }

        var buffer = _held.Length == 0 ? text : _held + text;
        var first = -1;
        string? matched = null;
        foreach (var stop in stops)
        {
            var at = buffer.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
                matched = stop;
            }
        }

        if (first >= 0)
        {
            _held = string.Empty;
            Matched = matched;
            return (buffer[..first], true);
        }

        var keep = LongestSuffixThatStartsAStop(buffer);
        _held = buffer[^keep..];
        return (buffer[..^keep], false);
    }

    /// <summary>The text held back at the end of a generation that stopped for another reason.</summary>
    public string Flush()
    {
        var rest = _held;
        _held = string.Empty;
        return rest;
    }

    private int LongestSuffixThatStartsAStop(string buffer)
    {
        var best = 0;
        foreach (var stop in stops)
        {
            for (var length = Math.Min(stop.Length - 1, buffer.Length); length > best; length--)
            {
                if (buffer.AsSpan(buffer.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    best = length;
                    break;
                }
            }
        }

        return best;
    }
}
