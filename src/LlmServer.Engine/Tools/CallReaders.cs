using System.Text;

namespace LlmServer.Engine.Tools;

/// <summary>Reads what follows a call's opening marker, a character at a time.</summary>
internal interface ICallBodyReader
{
    /// <summary>True once anything reached the sink: the text read so far can no longer be released as content.</summary>
    bool Emitted { get; }

    /// <summary>The body turned out to be content (functionary's <c>all</c> recipient): drop the marker, read text.</summary>
    bool SwitchesToText { get; }

    ScanResult Feed(char c);

    /// <summary>
    /// The output ended inside the body: report what is a call by now. Only a reader that holds a call back (for the
    /// id Mistral Nemo writes after the arguments) has anything to do; the others started their call already.
    /// </summary>
    void Finish()
    {
    }
}

/// <summary>A JSON call object as a body (Hermes' <c>&lt;tool_call&gt;</c>, Llama 3's JSON calls).</summary>
internal sealed class JsonCallBody(IToolCallSink sink, IReadOnlySet<string> toolNames, IReadOnlyList<string> argumentKeys) : ICallBodyReader
{
    private readonly JsonCallReader _reader = new(sink, toolNames, argumentKeys);

    public bool Emitted => _reader.Started;

    public bool SwitchesToText => false;

    public ScanResult Feed(char c)
    {
        var result = _reader.Feed(c);
        return result == ScanResult.Ended && !_reader.IsCall ? ScanResult.Invalid : result;
    }
}

/// <summary>
/// A JSON array of call objects (Mistral Nemo's <c>[TOOL_CALLS][...]</c>, whose objects carry the model's
/// <paramref name="idKey"/>, and the generic form's <c>tool_calls</c>).
/// </summary>
internal sealed class CallArrayReader(IToolCallSink sink, IReadOnlySet<string> toolNames, IReadOnlyList<string> argumentKeys, string? idKey = null) : ICallBodyReader
{
    private enum Phase
    {
        Open,
        Element,
        InElement,
        AfterElement,
    }

    private Phase _phase;
    private JsonCallReader? _element;

    public bool Emitted { get; private set; }

    public bool SwitchesToText => false;

    public ScanResult Feed(char c)
    {
        if (_phase == Phase.InElement)
        {
            var result = _element!.Feed(c);
            Emitted |= _element.Started;
            if (result == ScanResult.Ended)
            {
                _phase = Phase.AfterElement;
                return _element.IsCall ? ScanResult.Continue : ScanResult.Invalid;
            }

            return result;
        }

        if (char.IsWhiteSpace(c))
        {
            return ScanResult.Continue;
        }

        switch (_phase)
        {
            case Phase.Open when c == '[':
                _phase = Phase.Element;
                return ScanResult.Continue;
            case Phase.Element when c == '{':
                _element = new JsonCallReader(sink, toolNames, argumentKeys, idKey);
                _phase = Phase.InElement;
                return _element.Feed(c);
            case Phase.AfterElement when c == ',':
                _phase = Phase.Element;
                return ScanResult.Continue;
            case Phase.AfterElement when c == ']':
                return ScanResult.Ended;
            default:
                return ScanResult.Invalid;
        }
    }

    public void Finish()
    {
        if (_phase == Phase.InElement)
        {
            _element!.Finish();
            Emitted |= _element.Started;
        }
    }
}

/// <summary>
/// A call written as its name, a separator, then its JSON arguments: Mistral's <c>name[ARGS]{...}</c> (with an
/// optional <c>[CALL_ID]id</c> before <c>[ARGS]</c>, the model's id for the call) and functionary's
/// <c>name\n{...}</c>, where the recipient <c>all</c> means plain content.
/// </summary>
internal sealed class NamedCallReader(
    IToolCallSink sink,
    IReadOnlySet<string> toolNames,
    string separator,
    string? idMarker,
    string? textRecipient) : ICallBodyReader
{
    private const int MaxHeaderLength = 256;

    private readonly StringBuilder _header = new();
    private string? _id;
    private JsonValueExtent _extent;
    private bool _inArguments;

    public bool Emitted { get; private set; }

    public bool SwitchesToText { get; private set; }

    public ScanResult Feed(char c)
    {
        if (_inArguments)
        {
            return FeedArguments(c);
        }

        _header.Append(c);
        if (!_header.ToString().EndsWith(separator, StringComparison.Ordinal))
        {
            return (char.IsWhiteSpace(c) && !separator.Contains(c, StringComparison.Ordinal)) || _header.Length > MaxHeaderLength
                ? ScanResult.Invalid
                : ScanResult.Continue;
        }

        var name = _header.ToString(0, _header.Length - separator.Length);
        if (idMarker is not null && name.IndexOf(idMarker, StringComparison.Ordinal) is var at and >= 0)
        {
            _id = name[(at + idMarker.Length)..];
            name = name[..at];
        }

        if (name == textRecipient)
        {
            SwitchesToText = true;
            return ScanResult.Ended;
        }

        if (!toolNames.Contains(name))
        {
            return ScanResult.Invalid;
        }

        _inArguments = true;
        _header.Clear().Append(name);
        return ScanResult.Continue;
    }

    private ScanResult FeedArguments(char c)
    {
        if (!_extent.Started && char.IsWhiteSpace(c))
        {
            return ScanResult.Continue;
        }

        var result = _extent.Feed(c);
        if (result is ScanResult.Invalid or ScanResult.EndedBefore)
        {
            return result;
        }

        if (!Emitted)
        {
            Emitted = true;
            sink.OnCallStarted(_header.ToString(), _id);
        }

        sink.OnArguments(c.ToString());
        return result;
    }
}

/// <summary>
/// The generic JSON form (templates without native tools): <c>{"tool_call": {...}}</c>,
/// <c>{"tool_calls": [...]}</c> or <c>{"response": "..."}</c>, whose response text streams as it is decoded.
/// </summary>
internal sealed class GenericJsonReader(IToolCallSink sink, IReadOnlySet<string> toolNames) : ICallBodyReader
{
    private static readonly string[] ArgumentKeys = ["arguments"];

    private enum Phase
    {
        Open,
        KeyOrEnd,
        Key,
        Colon,
        Value,
        Response,
        Nested,
        Comma,
    }

    private readonly StringBuilder _key = new();
    private readonly StringBuilder _text = new();
    private JsonStringDecoder _decoder = new();
    private ICallBodyReader? _nested;
    private Phase _phase;

    public bool Emitted { get; private set; }

    public bool SwitchesToText => false;

    public ScanResult Feed(char c)
    {
        switch (_phase)
        {
            case Phase.Key:
                var keyResult = _decoder.Feed(c, _key);
                if (keyResult == ScanResult.Ended)
                {
                    _phase = Phase.Colon;
                    return ScanResult.Continue;
                }

                return keyResult;
            case Phase.Response:
                var textResult = _decoder.Feed(c, _text);
                if (_text.Length > 0)
                {
                    Emitted = true;
                    sink.OnText(_text.ToString());
                    _text.Clear();
                }

                if (textResult == ScanResult.Ended)
                {
                    _phase = Phase.Comma;
                    return ScanResult.Continue;
                }

                return textResult;
            case Phase.Nested:
                var nestedResult = _nested!.Feed(c);
                Emitted |= _nested.Emitted;
                if (nestedResult == ScanResult.Ended)
                {
                    _phase = Phase.Comma;
                    return ScanResult.Continue;
                }

                return nestedResult;
        }

        if (char.IsWhiteSpace(c))
        {
            return ScanResult.Continue;
        }

        switch (_phase)
        {
            case Phase.Open when c == '{':
                _phase = Phase.KeyOrEnd;
                return ScanResult.Continue;
            case Phase.KeyOrEnd when c == '"':
                _key.Clear();
                _decoder = new JsonStringDecoder();
                _phase = Phase.Key;
                return ScanResult.Continue;
            case Phase.KeyOrEnd or Phase.Comma when c == '}':
                return Emitted ? ScanResult.Ended : ScanResult.Invalid;
            case Phase.Colon when c == ':':
                _phase = Phase.Value;
                return ScanResult.Continue;
            case Phase.Comma when c == ',':
                _phase = Phase.KeyOrEnd;
                return ScanResult.Continue;
            case Phase.Value:
                return StartValue(c);
            default:
                return ScanResult.Invalid;
        }
    }

    private ScanResult StartValue(char c)
    {
        switch (_key.ToString())
        {
            case "response" when c == '"':
                _decoder = new JsonStringDecoder();
                _phase = Phase.Response;
                return ScanResult.Continue;
            case "tool_call":
                _nested = new JsonCallBody(sink, toolNames, ArgumentKeys);
                break;
            case "tool_calls":
                _nested = new CallArrayReader(sink, toolNames, ArgumentKeys);
                break;
            default:
                return ScanResult.Invalid;
        }

        _phase = Phase.Nested;
        return _nested.Feed(c);
    }

    public void Finish()
    {
        if (_phase == Phase.Nested)
        {
            _nested!.Finish();
            Emitted |= _nested.Emitted;
        }
    }
}
