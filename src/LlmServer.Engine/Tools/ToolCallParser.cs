using System.Text;

namespace LlmServer.Engine.Tools;

/// <summary>
/// Splits a model's output into content and tool calls in its family's syntax, incrementally: text is released
/// as soon as it cannot be the start of a call (only a possible opening marker, or a JSON object that may still
/// be a call, is held back), and a call's arguments stream as they are generated (a Mistral Nemo call's once its id,
/// written after them, is read). Feeding the same output in any
/// split gives the same content and calls. A would-be call that turns out not to be one (an unknown function,
/// broken JSON) is released as content.
/// </summary>
internal sealed class ToolCallParser
{
    private static readonly string[] JsonArguments = ["arguments"];
    private static readonly string[] LlamaArguments = ["parameters", "arguments"];

    private readonly IToolCallSink _sink;
    private readonly ToolCallFormat _format;
    private readonly IReadOnlySet<string> _tools;
    private readonly string[] _triggers;
    private readonly string? _closeMarker;
    private readonly bool _jsonAtStart;
    private readonly StringBuilder _held = new();
    private readonly StringBuilder _raw = new();
    private ICallBodyReader? _body;
    private bool _atStart = true;
    private bool _afterCall;
    private int _closeMatched = -1;
    private int _fed;
    private int? _contentEnd;

    public ToolCallParser(IToolCallSink sink, ToolCallFormat format, IReadOnlySet<string> toolNames)
    {
        _sink = sink;
        _format = format;
        _tools = toolNames;
        _triggers = ToolCallMarkers.Opening(format) is { } opening ? [opening] : [];
        _closeMarker = ToolCallMarkers.Closing(format);
        _jsonAtStart = format is ToolCallFormat.Llama3 or ToolCallFormat.Generic;

        // functionary's generation prompt ends with ">>>": the output starts with a recipient.
        if (format == ToolCallFormat.FunctionaryV32)
        {
            _atStart = false;
            _body = NewBody();
        }
    }

    /// <summary>
    /// During an <see cref="IToolCallSink.OnText"/> call: where that content ends in all the text fed so far
    /// (characters, exclusive). Content is a run of the fed text ending there (a call body's decoded response text
    /// ends at the character being read), so the caller can tell which of its tokens it came from.
    /// </summary>
    public int ContentEnd => _contentEnd ?? _fed;

    /// <summary>Feeds generated text.</summary>
    public void Push(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            _fed++;
            Feed(c);
        }
    }

    /// <summary>
    /// The generation ended. When the model ended it, held text is content after all (a broken call, an answer
    /// ending in "&lt;"). When it was cut off (max tokens, a full context, cancellation), held text is markup the model
    /// had not finished: a partial marker, a call not yet known to be one, a partial closing marker. That is dropped,
    /// as llama.cpp's chat parser does with output it parses as partial (anything not ended by end of generation).
    /// </summary>
    public void Complete(bool cutOff)
    {
        if (_body is not null)
        {
            _body.Finish();
            if (!_body.Emitted && _raw.Length > 0 && !cutOff)
            {
                Emit(_raw.ToString(), _fed);
            }

            _body = null;
        }
        else if (_closeMatched > 0)
        {
            if (!cutOff)
            {
                Emit(_closeMarker![.._closeMatched], _fed);
            }
        }
        else
        {
            if (cutOff)
            {
                _held.Length -= LongestTriggerPrefix();
            }

            if (!(_afterCall && IsWhiteSpace(_held)))
            {
                FlushAll(_fed);
            }
        }

        _raw.Clear();
        _held.Clear();
    }

    private void Feed(char c)
    {
        if (_body is not null)
        {
            FeedBody(c);
            return;
        }

        if (_closeMatched >= 0)
        {
            FeedClose(c);
            return;
        }

        FeedText(c);
    }

    private void FeedBody(char c)
    {
        _raw.Append(c);
        var result = _body!.Feed(c);
        switch (result)
        {
            case ScanResult.Continue:
                return;
            case ScanResult.Ended:
                EndBody(_body.SwitchesToText);
                return;
            case ScanResult.EndedBefore:
                EndBody(switchesToText: false);
                Feed(c);
                return;
            default:
                var emitted = _body.Emitted;
                _body = null;
                _raw.Length--;
                if (!emitted && _raw.Length > 0)
                {
                    // Not a call after all: everything since the marker is content (all but the character read).
                    Emit(_raw.ToString(), _fed - 1);
                }

                _raw.Clear();
                _afterCall = emitted;
                FeedText(c);
                return;
        }
    }

    private void EndBody(bool switchesToText)
    {
        _body = null;
        _raw.Clear();
        if (switchesToText)
        {
            return;
        }

        _afterCall = true;
        if (_closeMarker is not null)
        {
            _closeMatched = 0;
        }
    }

    /// <summary>After a call: whitespace, then the closing marker; anything else is content.</summary>
    private void FeedClose(char c)
    {
        if (_closeMatched == 0 && char.IsWhiteSpace(c))
        {
            return;
        }

        if (_closeMarker![_closeMatched] == c)
        {
            if (++_closeMatched == _closeMarker.Length)
            {
                _closeMatched = -1;
            }

            return;
        }

        var partial = _closeMarker[.._closeMatched];
        _closeMatched = -1;
        _held.Append(partial);
        FeedText(c);
    }

    private void FeedText(char c)
    {
        if (_atStart && _jsonAtStart)
        {
            if (char.IsWhiteSpace(c))
            {
                _held.Append(c);
                return;
            }

            _atStart = false;
            if (c == '{')
            {
                _raw.Clear().Append(_held);
                _held.Clear();
                _body = NewStartBody();
                FeedBody(c);
                return;
            }
        }

        _atStart &= char.IsWhiteSpace(c);
        _held.Append(c);
        foreach (var trigger in _triggers)
        {
            if (EndsWith(_held, trigger))
            {
                _held.Length -= trigger.Length;
                if (!(_afterCall && IsWhiteSpace(_held)))
                {
                    FlushAll(_fed - trigger.Length);
                }

                _held.Clear();
                _raw.Clear().Append(trigger);
                _body = NewBody();
                return;
            }
        }

        var keep = LongestTriggerPrefix();
        if (_afterCall)
        {
            if (IsWhiteSpace(_held, _held.Length - keep))
            {
                // Whitespace between calls is not content unless content follows.
                return;
            }

            _afterCall = false;
        }

        if (keep < _held.Length)
        {
            Emit(_held.ToString(0, _held.Length - keep), _fed - keep);
            _held.Remove(0, _held.Length - keep);
        }
    }

    /// <summary>Releases the held text, which ends at <paramref name="end"/> of the fed text.</summary>
    private void FlushAll(int end)
    {
        if (_held.Length > 0)
        {
            Emit(_held.ToString(), end);
            _held.Clear();
        }
    }

    private void Emit(string text, int end)
    {
        _contentEnd = end;
        _sink.OnText(text);
        _contentEnd = null;
    }

    private ICallBodyReader NewBody() => _format switch
    {
        ToolCallFormat.Hermes => new JsonCallBody(_sink, _tools, JsonArguments),
        ToolCallFormat.Llama3 => new JsonCallBody(_sink, _tools, LlamaArguments),
        ToolCallFormat.MistralNemo => new CallArrayReader(_sink, _tools, JsonArguments, idKey: "id"),
        ToolCallFormat.Mistral => new NamedCallReader(_sink, _tools, ToolCallMarkers.Args, ToolCallMarkers.CallId, textRecipient: null),
        ToolCallFormat.FunctionaryV32 => new NamedCallReader(_sink, _tools, "\n", idMarker: null, textRecipient: "all"),
        _ => new GenericJsonReader(_sink, _tools),
    };

    private ICallBodyReader NewStartBody() => _format == ToolCallFormat.Llama3
        ? new JsonCallBody(_sink, _tools, LlamaArguments)
        : new GenericJsonReader(_sink, _tools);

    /// <summary>The longest end of the held text that begins a marker (and is not a whole one).</summary>
    private int LongestTriggerPrefix()
    {
        var best = 0;
        foreach (var trigger in _triggers)
        {
            for (var length = Math.Min(trigger.Length - 1, _held.Length); length > best; length--)
            {
                if (EndsWith(_held, trigger.AsSpan(0, length)))
                {
                    best = length;
                    break;
                }
            }
        }

        return best;
    }

    private static bool EndsWith(StringBuilder builder, ReadOnlySpan<char> suffix)
    {
        if (builder.Length < suffix.Length)
        {
            return false;
        }

        var offset = builder.Length - suffix.Length;
        for (var i = 0; i < suffix.Length; i++)
        {
            if (builder[offset + i] != suffix[i])
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsWhiteSpace(StringBuilder builder) => IsWhiteSpace(builder, builder.Length);

    private static bool IsWhiteSpace(StringBuilder builder, int length)
    {
        for (var i = 0; i < length; i++)
        {
            if (!char.IsWhiteSpace(builder[i]))
            {
                return false;
            }
        }

        return true;
    }
}
