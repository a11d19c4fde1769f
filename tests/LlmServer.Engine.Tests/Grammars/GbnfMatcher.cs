using System.Globalization;
using System.Text;

namespace LlmServer.Engine.Tests.Grammars;

/// <summary>
/// Decides whether a whole string is in a GBNF grammar's language, for tests of the grammars the engine builds:
/// rules, alternatives, groups, literals, character classes (ranges, negation) and the repetitions <c>? * + {m,n}</c>.
/// It explores every parse (no left recursion, as llama.cpp requires), so it suits short inputs.
/// </summary>
internal sealed class GbnfMatcher
{
    private readonly Dictionary<string, Node> _rules = new(StringComparer.Ordinal);
    private readonly string _text;
    private int _pos;

    // In Begins: the input's end ends every item there, as the rest of the string may come after.
    private bool _beginning;

    public GbnfMatcher(string grammar)
    {
        _text = grammar;
        SkipSpace(newlines: true);
        while (_pos < _text.Length)
        {
            var name = ReadName();
            SkipSpace(newlines: false);
            Expect("::=");
            _rules[name] = ParseAlternatives(nested: false);
            SkipSpace(newlines: true);
        }
    }

    public bool Matches(string input, string root = "root") =>
        new Rule(root).Ends(this, input, 0).Contains(input.Length);

    /// <summary>
    /// Whether <paramref name="input"/> begins some string of the language: what llama.cpp accepts fed piece by piece
    /// (text that begins none leaves it no parse, and it throws).
    /// </summary>
    public bool Begins(string input, string root = "root")
    {
        _beginning = true;
        try
        {
            return Matches(input, root);
        }
        finally
        {
            _beginning = false;
        }
    }

    private abstract record Node
    {
        public abstract IEnumerable<int> Ends(GbnfMatcher grammar, string input, int start);
    }

    private sealed record Rule(string Name) : Node
    {
        public override IEnumerable<int> Ends(GbnfMatcher grammar, string input, int start) =>
            grammar._beginning && start == input.Length ? [start] : grammar._rules[Name].Ends(grammar, input, start);
    }

    private sealed record Literal(string Text) : Node
    {
        public override IEnumerable<int> Ends(GbnfMatcher grammar, string input, int start) =>
            start + Text.Length <= input.Length && string.CompareOrdinal(input, start, Text, 0, Text.Length) == 0 ? [start + Text.Length]
            : grammar._beginning && Text.StartsWith(input[start..], StringComparison.Ordinal) ? [input.Length]
            : [];
    }

    private sealed record CharClass(List<(char From, char To)> Ranges, bool Negated) : Node
    {
        public override IEnumerable<int> Ends(GbnfMatcher grammar, string input, int start) =>
            grammar._beginning && start == input.Length ? [start]
            : start < input.Length && Ranges.Exists(r => input[start] >= r.From && input[start] <= r.To) != Negated ? [start + 1] : [];
    }

    private sealed record Sequence(List<Node> Items) : Node
    {
        public override IEnumerable<int> Ends(GbnfMatcher grammar, string input, int start)
        {
            IEnumerable<int> ends = [start];
            foreach (var item in Items)
            {
                ends = ends.SelectMany(e => item.Ends(grammar, input, e)).Distinct().ToList();
            }

            return ends;
        }
    }

    private sealed record Choice(List<Node> Alternatives) : Node
    {
        public override IEnumerable<int> Ends(GbnfMatcher grammar, string input, int start) =>
            Alternatives.SelectMany(a => a.Ends(grammar, input, start)).Distinct().ToList();
    }

    private sealed record Repeat(Node Item, int Min, int? Max) : Node
    {
        public override IEnumerable<int> Ends(GbnfMatcher grammar, string input, int start)
        {
            var result = new HashSet<int>();
            var current = new HashSet<int> { start };

            // Past the minimum, each useful step consumes a character: the rest of the input bounds the steps.
            var limit = Max ?? Min + input.Length - start + 1;
            for (var count = 0; current.Count > 0; count++)
            {
                if (count >= Min)
                {
                    result.UnionWith(current);
                }

                if (count == limit)
                {
                    break;
                }

                current = current.SelectMany(e => Item.Ends(grammar, input, e)).ToHashSet();
            }

            return result;
        }
    }

    private Node ParseAlternatives(bool nested)
    {
        var alternatives = new List<Node> { ParseSequence(nested) };
        while (Peek() == '|')
        {
            _pos++;
            SkipSpace(newlines: true);
            alternatives.Add(ParseSequence(nested));
        }

        return alternatives.Count == 1 ? alternatives[0] : new Choice(alternatives);
    }

    private Sequence ParseSequence(bool nested)
    {
        var items = new List<Node>();
        SkipSpace(nested);
        while (_pos < _text.Length && Peek() is not ('|' or ')') && !(Peek() == '\n' && !nested))
        {
            Node item = Peek() switch
            {
                '"' => ParseLiteral(),
                '[' => ParseClass(),
                '(' => ParseGroup(),
                _ => new Rule(ReadName()),
            };
            SkipSpace(nested);
            items.Add(ParsePostfix(item, nested));
        }

        return new Sequence(items);
    }

    private Node ParsePostfix(Node item, bool nested)
    {
        while (_pos < _text.Length)
        {
            switch (Peek())
            {
                case '?':
                    item = new Repeat(item, 0, 1);
                    break;
                case '*':
                    item = new Repeat(item, 0, null);
                    break;
                case '+':
                    item = new Repeat(item, 1, null);
                    break;
                case '{':
                    var close = _text.IndexOf('}', _pos);
                    var counts = _text[(_pos + 1)..close].Split(',');
                    var min = int.Parse(counts[0].Trim(), CultureInfo.InvariantCulture);
                    int? max = counts.Length == 1 ? min : counts[1].Trim().Length == 0 ? null : int.Parse(counts[1].Trim(), CultureInfo.InvariantCulture);
                    item = new Repeat(item, min, max);
                    _pos = close;
                    break;
                default:
                    return item;
            }

            _pos++;
            SkipSpace(nested);
        }

        return item;
    }

    private Node ParseGroup()
    {
        _pos++;
        SkipSpace(newlines: true);
        var inner = ParseAlternatives(nested: true);
        if (Peek() != ')')
        {
            throw new FormatException($"')' was expected at {_pos}.");
        }

        _pos++;
        return inner;
    }

    private Literal ParseLiteral()
    {
        _pos++;
        var text = new StringBuilder();
        while (Peek() != '"')
        {
            text.Append(ReadChar());
        }

        _pos++;
        return new Literal(text.ToString());
    }

    private CharClass ParseClass()
    {
        _pos++;
        var negated = Peek() == '^';
        if (negated)
        {
            _pos++;
        }

        var ranges = new List<(char, char)>();
        while (Peek() != ']')
        {
            var from = ReadChar();
            var to = from;
            if (Peek() == '-' && _text[_pos + 1] != ']')
            {
                _pos++;
                to = ReadChar();
            }

            ranges.Add((from, to));
        }

        _pos++;
        return new CharClass(ranges, negated);
    }

    private char ReadChar()
    {
        var c = _text[_pos++];
        if (c != '\\')
        {
            return c;
        }

        var escaped = _text[_pos++];
        switch (escaped)
        {
            case 'n':
                return '\n';
            case 'r':
                return '\r';
            case 't':
                return '\t';
            case 'x':
                _pos += 2;
                return (char)int.Parse(_text.AsSpan(_pos - 2, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            default:
                return escaped;
        }
    }

    private string ReadName()
    {
        var start = _pos;
        while (_pos < _text.Length && (char.IsAsciiLetterOrDigit(_text[_pos]) || _text[_pos] is '-' or '_'))
        {
            _pos++;
        }

        return _pos > start ? _text[start.._pos] : throw new FormatException($"A rule name was expected at {_pos}: '{_text[_pos..Math.Min(_text.Length, _pos + 20)]}'.");
    }

    private void Expect(string token)
    {
        SkipSpace(newlines: true);
        if (string.CompareOrdinal(_text, _pos, token, 0, token.Length) != 0)
        {
            throw new FormatException($"'{token}' was expected at {_pos}.");
        }

        _pos += token.Length;
        SkipSpace(newlines: true);
    }

    private char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

    private void SkipSpace(bool newlines)
    {
        while (_pos < _text.Length && (_text[_pos] == ' ' || _text[_pos] == '\t' || (newlines && _text[_pos] is '\n' or '\r')))
        {
            _pos++;
        }
    }
}
