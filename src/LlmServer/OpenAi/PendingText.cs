using System.Text;
using LlmServer.Engine.Generation;

namespace LlmServer.OpenAi;

/// <summary>
/// Text a stream has read but not yet written. While the next event is already waiting (the client is behind),
/// consecutive deltas of one choice and one kind (answer or reasoning) merge here and go out as one chunk: one write
/// and one flush for all of them, the same text, token counts and logprobs in the same order. A caught-up client
/// still gets a chunk per delta.
/// </summary>
internal sealed class PendingText
{
    private readonly StringBuilder _text = new();
    private List<TokenLogProb>? _logProbs;
    private GenerationEvent? _first;
    private string? _firstText;
    private IReadOnlyList<TokenLogProb>? _firstLogProbs;
    private bool _reasoning;
    private int _tokens;
    private int _merged;

    /// <summary>Holds <paramref name="delta"/>; first writes what is held when it belongs to another choice or kind.</summary>
    public void Add(TextDelta delta, ChunkFormatter formatter) =>
        Add(delta, delta.Text, delta.Tokens, delta.LogProbs, reasoning: false, formatter);

    /// <summary>Holds a piece of reasoning (chat streams only); as <see cref="Add(TextDelta, ChunkFormatter)"/>.</summary>
    public void Add(ReasoningDelta delta, ChatChunkFormatter formatter) =>
        Add(delta, delta.Text, delta.Tokens, delta.LogProbs, reasoning: true, formatter);

    /// <summary>Writes what is held as one chunk, if anything.</summary>
    public void WriteTo(ChunkFormatter formatter)
    {
        if (_first is null)
        {
            return;
        }

        if (_reasoning)
        {
            ((ChatChunkFormatter)formatter).WriteReasoning(_merged == 1 ? (ReasoningDelta)_first : new ReasoningDelta(_first.Choice, _text.ToString(), _tokens, _logProbs));
        }
        else
        {
            formatter.WriteText(_merged == 1 ? (TextDelta)_first : new TextDelta(_first.Choice, _text.ToString(), _tokens, _logProbs));
        }

        Clear();
    }

    /// <summary>Drops what is held (the stream failed or the client left).</summary>
    public void Clear()
    {
        _first = null;
        _firstText = null;
        _firstLogProbs = null;
        _logProbs = null;
        _text.Clear();
        _tokens = 0;
        _merged = 0;
    }

    private void Add(GenerationEvent delta, string text, int tokens, IReadOnlyList<TokenLogProb>? logProbs, bool reasoning, ChunkFormatter formatter)
    {
        if (_first is not null && (_first.Choice != delta.Choice || _reasoning != reasoning))
        {
            WriteTo(formatter);
        }

        if (_first is null)
        {
            _first = delta;
            _firstText = text;
            _firstLogProbs = logProbs;
            _reasoning = reasoning;
            _tokens = tokens;
            _merged = 1;
            return;
        }

        if (_merged == 1)
        {
            _text.Append(_firstText);
            _logProbs = _firstLogProbs is null ? null : [.. _firstLogProbs];
        }

        _text.Append(text);
        _tokens += tokens;
        if (logProbs is not null)
        {
            (_logProbs ??= []).AddRange(logProbs);
        }

        _merged++;
    }
}
