using System.Text;
using LlmServer.Engine.Generation;

namespace LlmServer.OpenAi;

/// <summary>
/// Text a stream has read but not yet written. While the next event is already waiting (the client is behind),
/// consecutive deltas of one choice merge here and go out as one chunk: one write and one flush for all of them,
/// the same text, token counts and logprobs in the same order. A caught-up client still gets a chunk per delta.
/// </summary>
internal sealed class PendingText
{
    private readonly StringBuilder _text = new();
    private List<TokenLogProb>? _logProbs;
    private TextDelta? _first;
    private int _tokens;
    private int _merged;

    /// <summary>Holds <paramref name="delta"/>; first writes what is held when it belongs to another choice.</summary>
    public void Add(TextDelta delta, ChunkFormatter formatter)
    {
        if (_first is not null && _first.Choice != delta.Choice)
        {
            WriteTo(formatter);
        }

        if (_first is null)
        {
            _first = delta;
            _tokens = delta.Tokens;
            _merged = 1;
            return;
        }

        if (_merged == 1)
        {
            _text.Append(_first.Text);
            _logProbs = _first.LogProbs is null ? null : [.. _first.LogProbs];
        }

        _text.Append(delta.Text);
        _tokens += delta.Tokens;
        if (delta.LogProbs is not null)
        {
            (_logProbs ??= []).AddRange(delta.LogProbs);
        }

        _merged++;
    }

    /// <summary>Writes what is held as one chunk, if anything.</summary>
    public void WriteTo(ChunkFormatter formatter)
    {
        if (_first is null)
        {
            return;
        }

        formatter.WriteText(_merged == 1 ? _first : new TextDelta(_first.Choice, _text.ToString(), _tokens, _logProbs));
        _first = null;
        _logProbs = null;
        _text.Clear();
        _tokens = 0;
        _merged = 0;
    }

    /// <summary>Drops what is held (the stream failed or the client left).</summary>
    public void Clear()
    {
        _first = null;
        _logProbs = null;
        _text.Clear();
        _merged = 0;
    }
}
