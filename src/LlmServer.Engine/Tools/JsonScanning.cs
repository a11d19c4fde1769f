using System.Globalization;
using System.Text;

namespace LlmServer.Engine.Tools;

/// <summary>What a JSON scanner made of one more character.</summary>
internal enum ScanResult
{
    /// <summary>The character belongs to the value, which goes on.</summary>
    Continue,

    /// <summary>The character closed the value.</summary>
    Ended,

    /// <summary>The value had ended before this character (a number or literal followed by a delimiter).</summary>
    EndedBefore,

    /// <summary>The character cannot appear here: this is not JSON.</summary>
    Invalid,
}

/// <summary>
/// Finds where one JSON value ends, fed a character at a time (structure only: strings, nesting and bare literals;
/// a value that passes here may still be rejected by a full parser).
/// </summary>
internal struct JsonValueExtent
{
    private int _depth;
    private bool _started;
    private bool _inString;
    private bool _escape;
    private bool _literal;

    public readonly bool Started => _started;

    public ScanResult Feed(char c)
    {
        if (!_started)
        {
            _started = true;
            switch (c)
            {
                case '{' or '[':
                    _depth = 1;
                    return ScanResult.Continue;
                case '"':
                    _inString = true;
                    return ScanResult.Continue;
                default:
                    if (!IsLiteralChar(c))
                    {
                        return ScanResult.Invalid;
                    }

                    _literal = true;
                    return ScanResult.Continue;
            }
        }

        if (_literal)
        {
            return IsLiteralChar(c) ? ScanResult.Continue : ScanResult.EndedBefore;
        }

        if (_inString)
        {
            if (_escape)
            {
                _escape = false;
            }
            else if (c == '\\')
            {
                _escape = true;
            }
            else if (c == '"')
            {
                _inString = false;
                if (_depth == 0)
                {
                    return ScanResult.Ended;
                }
            }

            return ScanResult.Continue;
        }

        switch (c)
        {
            case '"':
                _inString = true;
                break;
            case '{' or '[':
                _depth++;
                break;
            case '}' or ']':
                if (--_depth == 0)
                {
                    return ScanResult.Ended;
                }

                break;
        }

        return ScanResult.Continue;
    }

    private static bool IsLiteralChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '+' or '.';
}

/// <summary>Decodes the inside of a JSON string a character at a time (after its opening quote).</summary>
internal sealed class JsonStringDecoder
{
    private readonly StringBuilder _hex = new(4);
    private bool _escape;
    private bool _unicode;
    private char _highSurrogate;

    /// <summary>Feeds one character; decoded text goes to <paramref name="output"/>. True when the closing quote came.</summary>
    public ScanResult Feed(char c, StringBuilder output)
    {
        if (_unicode)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return ScanResult.Invalid;
            }

            _hex.Append(c);
            if (_hex.Length == 4)
            {
                _unicode = false;
                var code = (char)int.Parse(_hex.ToString(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                _hex.Clear();
                Append(code, output);
            }

            return ScanResult.Continue;
        }

        if (_escape)
        {
            _escape = false;
            switch (c)
            {
                case 'u':
                    _unicode = true;
                    return ScanResult.Continue;
                case '"' or '\\' or '/':
                    Append(c, output);
                    return ScanResult.Continue;
                case 'n':
                    Append('\n', output);
                    return ScanResult.Continue;
                case 't':
                    Append('\t', output);
                    return ScanResult.Continue;
                case 'r':
                    Append('\r', output);
                    return ScanResult.Continue;
                case 'b':
                    Append('\b', output);
                    return ScanResult.Continue;
                case 'f':
                    Append('\f', output);
                    return ScanResult.Continue;
                default:
                    return ScanResult.Invalid;
            }
        }

        switch (c)
        {
            case '\\':
                _escape = true;
                return ScanResult.Continue;
            case '"':
                return ScanResult.Ended;
            default:
                Append(c, output);
                return ScanResult.Continue;
        }
    }

    /// <summary>A surrogate pair written as two escapes is emitted whole, never half.</summary>
    private void Append(char c, StringBuilder output)
    {
        if (char.IsHighSurrogate(c))
        {
            _highSurrogate = c;
            return;
        }

        if (_highSurrogate != '\0')
        {
            if (char.IsLowSurrogate(c))
            {
                output.Append(_highSurrogate);
            }

            _highSurrogate = '\0';
        }

        output.Append(c);
    }
}
