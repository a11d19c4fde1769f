using System.Globalization;
using System.Text;

namespace LlmServer.Templating;

internal enum TokenKind
{
    Text,
    OpenStatement,
    CloseStatement,
    OpenExpression,
    CloseExpression,
    Name,
    String,
    Integer,
    Float,
    Operator,
    End,
}

internal readonly record struct Token(TokenKind Kind, string Value, int Offset);

/// <summary>
/// Splits a template into text and tag tokens, applying whitespace control the way chat templates are rendered
/// (Hugging Face and llama.cpp): <c>trim_blocks</c> and <c>lstrip_blocks</c> on, <c>-</c> strips, one trailing
/// newline of the source dropped, <c>{% raw %}</c> kept verbatim.
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] Operators =
    [
        "**", "//", "==", "!=", "<=", ">=",
        "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "(", ")", "[", "]", "{", "}", "|",
    ];

    private readonly string _source;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private Lexer(string source) => _source = source;

    public static (List<Token> Tokens, string Source) Tokenize(string source)
    {
        var normalized = source.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n');
        if (normalized.EndsWith('\n'))
        {
            normalized = normalized[..^1];
        }

        var lexer = new Lexer(normalized);
        lexer.Run();
        return (lexer._tokens, normalized);
    }

    private void Run()
    {
        // How the previous tag ended: whether it trims the following newline (a block or comment) or all whitespace.
        var trimNewline = false;
        var stripFollowing = false;
        while (_pos < _source.Length)
        {
            var tagStart = FindTag(_pos);
            var text = _source[_pos..tagStart];
            var textStart = _pos;
            if (tagStart < _source.Length)
            {
                var kind = _source[tagStart + 1];
                var marker = tagStart + 2 < _source.Length ? _source[tagStart + 2] : '\0';
                if (kind is '%' or '#' && marker != '+')
                {
                    text = LstripBlock(text, textStart);
                }

                if (marker == '-')
                {
                    text = text.TrimEnd(' ', '\t', '\n', '\r');
                }
            }

            if (trimNewline && text.StartsWith('\n'))
            {
                text = text[1..];
            }

            if (stripFollowing)
            {
                text = text.TrimStart(' ', '\t', '\n', '\r');
            }

            if (text.Length > 0)
            {
                _tokens.Add(new Token(TokenKind.Text, text, textStart));
            }

            if (tagStart >= _source.Length)
            {
                break;
            }

            _pos = tagStart;
            var close = _source[tagStart + 1] switch
            {
                '#' => LexComment(),
                '%' => LexTag(TokenKind.OpenStatement, TokenKind.CloseStatement, "%}"),
                _ => LexTag(TokenKind.OpenExpression, TokenKind.CloseExpression, "}}"),
            };
            stripFollowing = close.Strip;
            trimNewline = close.TrimsNewline;
        }
    }

    private int FindTag(int from)
    {
        for (var i = from; i + 1 < _source.Length; i++)
        {
            if (_source[i] == '{' && _source[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }

        return _source.Length;
    }

    // lstrip_blocks: spaces and tabs between the start of a line and a block tag go.
    private static string LstripBlock(string text, int textStart)
    {
        var end = text.Length;
        while (end > 0 && text[end - 1] is ' ' or '\t')
        {
            end--;
        }

        if (end == text.Length)
        {
            return text;
        }

        if (end > 0 && text[end - 1] == '\n')
        {
            return text[..end];
        }

        return end == 0 && textStart == 0 ? string.Empty : text;
    }

    private (bool Strip, bool TrimsNewline) LexComment()
    {
        var end = _source.IndexOf("#}", _pos + 2, StringComparison.Ordinal);
        if (end < 0)
        {
            throw Error("missing end of comment tag", _pos);
        }

        var strip = _source[end - 1] == '-' && end - 1 >= _pos + 2;
        _pos = end + 2;
        return (strip, true);
    }

    private (bool Strip, bool TrimsNewline) LexTag(TokenKind open, TokenKind close, string closer)
    {
        var openOffset = _pos;
        _pos += 2;
        if (_pos < _source.Length && _source[_pos] is '-' or '+')
        {
            _pos++;
        }

        if (open == TokenKind.OpenStatement && TryLexRaw(openOffset))
        {
            return (_source[_pos - 3] == '-', true);
        }

        _tokens.Add(new Token(open, closer == "%}" ? "{%" : "{{", openOffset));
        var depth = 0;
        while (true)
        {
            SkipWhitespace();
            if (_pos >= _source.Length)
            {
                throw Error($"unexpected end of template, expected '{closer}'", openOffset);
            }

            if (depth == 0)
            {
                if (_source[_pos] == '-' && string.CompareOrdinal(_source, _pos + 1, closer, 0, 2) == 0)
                {
                    _tokens.Add(new Token(close, closer, _pos));
                    _pos += 3;
                    return (true, true);
                }

                if (string.CompareOrdinal(_source, _pos, closer, 0, 2) == 0)
                {
                    _tokens.Add(new Token(close, closer, _pos));
                    _pos += 2;
                    return (false, close == TokenKind.CloseStatement);
                }
            }

            var c = _source[_pos];
            if (c is '\'' or '"')
            {
                LexString(c);
            }
            else if (char.IsAsciiDigit(c))
            {
                LexNumber();
            }
            else if (char.IsLetter(c) || c == '_')
            {
                var start = _pos;
                while (_pos < _source.Length && (char.IsLetterOrDigit(_source[_pos]) || _source[_pos] == '_'))
                {
                    _pos++;
                }

                _tokens.Add(new Token(TokenKind.Name, _source[start.._pos], start));
            }
            else
            {
                var op = Array.Find(Operators, o => string.CompareOrdinal(_source, _pos, o, 0, o.Length) == 0)
                    ?? throw Error($"unexpected character '{c}'", _pos);
                depth += op switch
                {
                    "{" => 1,
                    "}" => -1,
                    _ => 0,
                };
                _tokens.Add(new Token(TokenKind.Operator, op, _pos));
                _pos += op.Length;
            }
        }
    }

    private bool TryLexRaw(int openOffset)
    {
        var p = _pos;
        while (p < _source.Length && char.IsWhiteSpace(_source[p]))
        {
            p++;
        }

        if (string.CompareOrdinal(_source, p, "raw", 0, 3) != 0)
        {
            return false;
        }

        p += 3;
        while (p < _source.Length && char.IsWhiteSpace(_source[p]))
        {
            p++;
        }

        var stripInside = p < _source.Length && _source[p] == '-';
        if (stripInside)
        {
            p++;
        }

        if (string.CompareOrdinal(_source, p, "%}", 0, 2) != 0)
        {
            return false;
        }

        var bodyStart = p + 2;
        var search = bodyStart;
        while (true)
        {
            var tag = _source.IndexOf("{%", search, StringComparison.Ordinal);
            if (tag < 0)
            {
                throw Error("missing '{% endraw %}'", openOffset);
            }

            var q = tag + 2;
            var stripBefore = q < _source.Length && _source[q] == '-';
            if (stripBefore)
            {
                q++;
            }

            while (q < _source.Length && char.IsWhiteSpace(_source[q]))
            {
                q++;
            }

            if (string.CompareOrdinal(_source, q, "endraw", 0, 6) != 0)
            {
                search = tag + 2;
                continue;
            }

            q += 6;
            while (q < _source.Length && char.IsWhiteSpace(_source[q]))
            {
                q++;
            }

            if (q < _source.Length && _source[q] == '-')
            {
                q++;
            }

            if (string.CompareOrdinal(_source, q, "%}", 0, 2) != 0)
            {
                throw Error("malformed '{% endraw %}'", tag);
            }

            var body = _source[bodyStart..tag];
            if (stripInside)
            {
                body = body.TrimStart(' ', '\t', '\n', '\r');
            }

            if (stripBefore)
            {
                body = body.TrimEnd(' ', '\t', '\n', '\r');
            }

            if (body.Length > 0)
            {
                _tokens.Add(new Token(TokenKind.Text, body, bodyStart));
            }

            _pos = q + 2;
            return true;
        }
    }

    private void SkipWhitespace()
    {
        while (_pos < _source.Length && char.IsWhiteSpace(_source[_pos]))
        {
            _pos++;
        }
    }

    private void LexString(char quote)
    {
        var start = _pos++;
        var builder = new StringBuilder();
        while (true)
        {
            if (_pos >= _source.Length)
            {
                throw Error("unterminated string", start);
            }

            var c = _source[_pos++];
            if (c == quote)
            {
                break;
            }

            if (c != '\\')
            {
                builder.Append(c);
                continue;
            }

            if (_pos >= _source.Length)
            {
                throw Error("unterminated string", start);
            }

            var e = _source[_pos++];
            switch (e)
            {
                case 'n': builder.Append('\n'); break;
                case 't': builder.Append('\t'); break;
                case 'r': builder.Append('\r'); break;
                case 'b': builder.Append('\b'); break;
                case 'f': builder.Append('\f'); break;
                case 'v': builder.Append('\v'); break;
                case '0': builder.Append('\0'); break;
                case '\\': builder.Append('\\'); break;
                case '\'': builder.Append('\''); break;
                case '"': builder.Append('"'); break;
                case '\n': break;
                case 'x': builder.Append(HexEscape(2)); break;
                case 'u': builder.Append(HexEscape(4)); break;
                case 'U': builder.Append(char.ConvertFromUtf32(int.Parse(HexDigits(8), NumberStyles.HexNumber, CultureInfo.InvariantCulture))); break;
                default: builder.Append('\\').Append(e); break;
            }
        }

        _tokens.Add(new Token(TokenKind.String, builder.ToString(), start));
    }

    private char HexEscape(int length) => (char)int.Parse(HexDigits(length), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private string HexDigits(int length)
    {
        if (_pos + length > _source.Length)
        {
            throw Error("truncated escape in string", _pos);
        }

        var digits = _source.Substring(_pos, length);
        _pos += length;
        return digits;
    }

    private void LexNumber()
    {
        var start = _pos;
        while (_pos < _source.Length && (char.IsAsciiDigit(_source[_pos]) || _source[_pos] == '_'))
        {
            _pos++;
        }

        var isFloat = false;
        if (_pos + 1 < _source.Length && _source[_pos] == '.' && char.IsAsciiDigit(_source[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            while (_pos < _source.Length && char.IsAsciiDigit(_source[_pos]))
            {
                _pos++;
            }
        }

        if (_pos < _source.Length && _source[_pos] is 'e' or 'E')
        {
            var p = _pos + 1;
            if (p < _source.Length && _source[p] is '+' or '-')
            {
                p++;
            }

            if (p < _source.Length && char.IsAsciiDigit(_source[p]))
            {
                isFloat = true;
                _pos = p;
                while (_pos < _source.Length && char.IsAsciiDigit(_source[_pos]))
                {
                    _pos++;
                }
            }
        }

        var text = _source[start.._pos].Replace("_", string.Empty, StringComparison.Ordinal);
        _tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, text, start));
    }

    private TemplateException Error(string reason, int offset)
    {
        var (line, column) = Position(_source, offset);
        return new TemplateException(reason, line, column);
    }

    public static (int Line, int Column) Position(string source, int offset)
    {
        var line = 1;
        var lineStart = 0;
        for (var i = 0; i < Math.Min(offset, source.Length); i++)
        {
            if (source[i] == '\n')
            {
                line++;
                lineStart = i + 1;
            }
        }

        return (line, offset - lineStart + 1);
    }
}
