using System.Text;
using System.Text.Json;

namespace LlmServer.Engine.Tools;

/// <summary>Where a parser sends what it recognised, in order.</summary>
internal interface IToolCallSink
{
    void OnText(string text);

    /// <summary>A call begins; <paramref name="id"/> is the call id the model wrote, if it wrote one.</summary>
    void OnCallStarted(string name, string? id);

    void OnArguments(string fragment);
}

/// <summary>
/// Reads one call object, <c>{"name": "...", "arguments": {...}}</c> (the argument key varies by family), a
/// character at a time. The call starts once its name is known to be an offered tool and its arguments begin;
/// argument text then streams as it comes. With an <paramref name="idKey"/> (Mistral Nemo's <c>id</c>, which the
/// model writes after the arguments) the call starts only once that string is read or the object ends, so the call
/// carries the model's id from its first event. Other keys (<c>type</c>) are skipped. An object that is not a call
/// of an offered tool is reported as <see cref="ScanResult.Invalid"/> (or ends with <see cref="IsCall"/> false)
/// before anything was emitted, so the caller can release its text as content.
/// </summary>
internal sealed class JsonCallReader(IToolCallSink sink, IReadOnlySet<string> toolNames, IReadOnlyList<string> argumentKeys, string? idKey = null)
{
    private enum Phase
    {
        Open,
        KeyOrEnd,
        Key,
        Colon,
        Value,
        Name,
        Id,
        Arguments,
        Skip,
        Comma,
        Done,
    }

    private readonly StringBuilder _key = new();
    private readonly StringBuilder _name = new();
    private readonly StringBuilder _pendingArguments = new();
    private StringBuilder? _id;

    // Arguments written as a JSON string or null, held whole until they end to be unwrapped (see ArgumentsValue).
    private StringBuilder? _heldArguments;
    private JsonStringDecoder _decoder = new();
    private JsonValueExtent _extent;
    private Phase _phase = Phase.Open;
    private bool _nameKnown;
    private bool _argumentsSeen;

    /// <summary>True once the call was reported to the sink.</summary>
    public bool Started { get; private set; }

    /// <summary>After the object ended: whether it was a call.</summary>
    public bool IsCall => Started;

    public ScanResult Feed(char c)
    {
        var result = Read(c);
        if (result == ScanResult.Invalid)
        {
            ReleaseHeldCall();
        }

        return result;
    }

    /// <summary>The output ended inside the object: a call held back for its id is reported, without a cut-off id.</summary>
    public void Finish()
    {
        ReleaseHeldCall();
        if (_heldArguments is not null && Started)
        {
            // Cut off inside a held string: what was written goes on as it was, not unwrapped.
            sink.OnArguments(_heldArguments.ToString());
            _heldArguments = null;
        }
    }

    /// <summary>
    /// The arguments as the API reports them, from a held JSON string or null (llama.cpp does the same): a string
    /// holding a JSON object is that object's text, null is <c>{}</c>; any other string stays the literal it was.
    /// </summary>
    internal static string ArgumentsValue(string raw)
    {
        if (raw == "null")
        {
            return "{}";
        }

        try
        {
            var text = JsonSerializer.Deserialize<string>(raw);
            using var parsed = text is null ? null : JsonDocument.Parse(text);
            return parsed?.RootElement.ValueKind == JsonValueKind.Object ? text! : raw;
        }
        catch (JsonException)
        {
            return raw;
        }
    }

    private ScanResult Read(char c)
    {
        switch (_phase)
        {
            case Phase.Open:
                if (char.IsWhiteSpace(c))
                {
                    return ScanResult.Continue;
                }

                if (c != '{')
                {
                    return ScanResult.Invalid;
                }

                _phase = Phase.KeyOrEnd;
                return ScanResult.Continue;
            case Phase.KeyOrEnd:
                if (char.IsWhiteSpace(c))
                {
                    return ScanResult.Continue;
                }

                if (c == '}')
                {
                    return End();
                }

                if (c != '"')
                {
                    return ScanResult.Invalid;
                }

                _key.Clear();
                _decoder = new JsonStringDecoder();
                _phase = Phase.Key;
                return ScanResult.Continue;
            case Phase.Key:
                var keyResult = _decoder.Feed(c, _key);
                if (keyResult == ScanResult.Ended)
                {
                    _phase = Phase.Colon;
                    return ScanResult.Continue;
                }

                return keyResult;
            case Phase.Colon:
                if (char.IsWhiteSpace(c))
                {
                    return ScanResult.Continue;
                }

                if (c != ':')
                {
                    return ScanResult.Invalid;
                }

                _phase = Phase.Value;
                return ScanResult.Continue;
            case Phase.Value:
                return StartValue(c);
            case Phase.Name:
                var nameResult = _decoder.Feed(c, _name);
                if (nameResult == ScanResult.Ended)
                {
                    if (!toolNames.Contains(_name.ToString()))
                    {
                        return ScanResult.Invalid;
                    }

                    _nameKnown = true;
                    _phase = Phase.Comma;
                    TryStart();
                    return ScanResult.Continue;
                }

                return nameResult;
            case Phase.Id:
                var idResult = _decoder.Feed(c, _id!);
                if (idResult == ScanResult.Ended)
                {
                    _phase = Phase.Comma;
                    TryStart();
                    return ScanResult.Continue;
                }

                return idResult;
            case Phase.Arguments:
                return ContinueValue(c, arguments: true);
            case Phase.Skip:
                return ContinueValue(c, arguments: false);
            case Phase.Comma:
                return AfterValue(c);
            default:
                return ScanResult.Invalid;
        }
    }

    private ScanResult StartValue(char c)
    {
        if (char.IsWhiteSpace(c))
        {
            return ScanResult.Continue;
        }

        var key = _key.ToString();
        if (key == "name" && !_nameKnown)
        {
            if (c != '"')
            {
                return ScanResult.Invalid;
            }

            _name.Clear();
            _decoder = new JsonStringDecoder();
            _phase = Phase.Name;
            return ScanResult.Continue;
        }

        if (key == idKey && _id is null && c == '"')
        {
            _id = new StringBuilder();
            _decoder = new JsonStringDecoder();
            _phase = Phase.Id;
            return ScanResult.Continue;
        }

        var isArguments = !_argumentsSeen && argumentKeys.Contains(key);
        _extent = default;
        var result = _extent.Feed(c);
        if (result == ScanResult.Invalid)
        {
            return result;
        }

        if (isArguments)
        {
            _argumentsSeen = true;
            TryStart();
            if (c is '"' or 'n')
            {
                _heldArguments = new StringBuilder().Append(c);
            }
            else
            {
                EmitArguments(c);
            }
        }

        _phase = isArguments ? Phase.Arguments : Phase.Skip;
        return ScanResult.Continue;
    }

    private ScanResult ContinueValue(char c, bool arguments)
    {
        switch (_extent.Feed(c))
        {
            case ScanResult.Continue:
                if (arguments)
                {
                    EmitArguments(c);
                }

                return ScanResult.Continue;
            case ScanResult.Ended:
                if (arguments)
                {
                    EmitArguments(c);
                    ReleaseHeldArguments();
                }

                _phase = Phase.Comma;
                return ScanResult.Continue;
            case ScanResult.EndedBefore:
                if (arguments)
                {
                    ReleaseHeldArguments();
                }

                _phase = Phase.Comma;
                return AfterValue(c);
            default:
                return ScanResult.Invalid;
        }
    }

    private ScanResult AfterValue(char c)
    {
        if (char.IsWhiteSpace(c))
        {
            return ScanResult.Continue;
        }

        switch (c)
        {
            case ',':
                _phase = Phase.KeyOrEnd;
                return ScanResult.Continue;
            case '}':
                return End();
            default:
                return ScanResult.Invalid;
        }
    }

    /// <summary>
    /// A call held back for its id is reported when its object breaks or the output ends first, without a partial id:
    /// as any call whose arguments began, it is not lost or turned into text (the rest after it is text).
    /// </summary>
    private void ReleaseHeldCall()
    {
        if (_nameKnown && _argumentsSeen && !Started)
        {
            if (_phase == Phase.Id)
            {
                _id = null;
            }

            Start();
        }
    }

    private ScanResult End()
    {
        _phase = Phase.Done;
        if (_nameKnown && !Started)
        {
            Start();
            if (!_argumentsSeen)
            {
                // A call without arguments: OpenAI clients expect an object.
                sink.OnArguments("{}");
            }
        }

        return ScanResult.Ended;
    }

    private void TryStart()
    {
        if (_nameKnown && _argumentsSeen && !Started && (idKey is null || _id is not null))
        {
            Start();
        }
    }

    private void Start()
    {
        Started = true;
        sink.OnCallStarted(_name.ToString(), _id?.ToString());
        if (_pendingArguments.Length > 0)
        {
            sink.OnArguments(_pendingArguments.ToString());
            _pendingArguments.Clear();
        }
    }

    private void ReleaseHeldArguments()
    {
        if (_heldArguments is null)
        {
            return;
        }

        var value = ArgumentsValue(_heldArguments.ToString());
        _heldArguments = null;
        if (Started)
        {
            sink.OnArguments(value);
        }
        else
        {
            _pendingArguments.Append(value);
        }
    }

    private void EmitArguments(char c)
    {
        if (_heldArguments is not null)
        {
            _heldArguments.Append(c);
        }
        else if (Started)
        {
            sink.OnArguments(c.ToString());
        }
        else
        {
            _pendingArguments.Append(c);
        }
    }
}
