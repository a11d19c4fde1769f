using System.Globalization;
using System.Text;

namespace LlmServer.Engine.Grammars;

/// <summary>
/// Checks a GBNF grammar the way llama.cpp's grammar parser and <c>llama_grammar_init_impl</c> do, before the grammar
/// reaches native code: when llama.cpp refuses a grammar, <c>llama_sampler_init_grammar</c> returns NULL and
/// LLamaSharp adds that NULL to the sampler chain, which brings the process down.
/// </summary>
/// <remarks>
/// Everything this accepts, llama.cpp accepts too (checked against the native library LLamaSharp 0.30.0 ships,
/// which knows no <c>\-</c> escape and refuses repetition counts above 2000). It is stricter where llama.cpp accepts
/// something that is almost surely a mistake, or that makes it crash, hang or run out of memory: empty input, empty or
/// reversed character classes, a rule defined twice (llama.cpp keeps the last one, and crashes when that drops the only
/// reference to the root), a repetition whose maximum is below its minimum (llama.cpp loops for ever), left recursion
/// through rules that are nullable without a literally empty alternative (llama.cpp's check misses it and then grows
/// without bound), token references (<c>&lt;[id]&gt;</c>, <c>!&lt;[id]&gt;</c>, <c>&lt;text&gt;</c>: checking them
/// needs the vocabulary, and one that can never be sampled, such as an id beyond the vocabulary, aborts the process at
/// sampling time), NUL characters and unpaired surrogates, groups nested more than <see cref="MaxNesting"/> deep,
/// grammars that expand to more than <see cref="MaxElements"/> elements, and grammars whose left-recursion check would
/// run too deep or too long inside llama.cpp.
/// </remarks>
internal static class GbnfValidator
{
    /// <summary>llama.cpp's <c>MAX_REPETITION_THRESHOLD</c>: the most a <c>{m,n}</c> count may be.</summary>
    internal const int MaxRepetitions = 2000;

    /// <summary>Parenthesised groups nest this deep at most (llama.cpp parses them recursively).</summary>
    internal const int MaxNesting = 256;

    /// <summary>The expanded grammar (repetitions unrolled as llama.cpp unrolls them) holds this many elements at most.</summary>
    internal const int MaxElements = 1 << 20;

    /// <summary>llama.cpp's left-recursion check recurses this deep at most (a chain of leftmost rule references).</summary>
    internal const int MaxLeftDepth = 2500;

    /// <summary>llama.cpp's left-recursion check, which revisits shared rules, may look at this many elements at most.</summary>
    internal const long MaxLeftCheckSteps = 20_000_000;

    /// <summary>Validates <paramref name="grammar"/>, whose start rule is <paramref name="rootRule"/>.</summary>
    /// <param name="grammar">The GBNF text.</param>
    /// <param name="rootRule">The start rule's name (llama.cpp's <c>grammar_root</c>).</param>
    /// <param name="error">Why the grammar is refused, with the line and column at fault; empty when it is accepted.</param>
    /// <returns>Whether llama.cpp can take the grammar.</returns>
    public static bool TryValidate(string grammar, string rootRule, out string error)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        ArgumentException.ThrowIfNullOrEmpty(rootRule);

        try
        {
            var parser = new Parser(ToUtf8(grammar));
            parser.ParseGrammar();
            parser.CheckReferences(rootRule);
            parser.CheckLeftRecursion();
            error = string.Empty;
            return true;
        }
        catch (FormatException ex)
        {
            error = ex.Message;
            return false;
        }
    }

    /// <summary>
    /// The bytes llama.cpp will see. A NUL would silently end the C string early and a lone surrogate would be
    /// replaced during marshalling, so neither is let through.
    /// </summary>
    private static byte[] ToUtf8(string grammar)
    {
        var line = 1;
        var column = 1;
        for (var i = 0; i < grammar.Length; i++)
        {
            var c = grammar[i];
            if (c == '\0')
            {
                throw new FormatException($"line {line}, column {column}: the grammar contains a NUL character; write \\x00 instead.");
            }

            if (char.IsHighSurrogate(c) && i + 1 < grammar.Length && char.IsLowSurrogate(grammar[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                throw new FormatException($"line {line}, column {column}: the grammar contains an unpaired UTF-16 surrogate (U+{(int)c:X4}).");
            }

            if (c == '\n' || (c == '\r' && (i + 1 >= grammar.Length || grammar[i + 1] != '\n')))
            {
                line++;
                column = 1;
            }
            else
            {
                column++;
            }
        }

        return Encoding.UTF8.GetBytes(grammar);
    }

    private enum ElementKind : byte
    {
        End,
        Alternative,
        RuleReference,
        Char,
        CharNot,
        CharAlternative,
        CharRangeUpper,
        CharAny,
    }

    private readonly record struct Element(ElementKind Kind, uint Value);

    /// <summary>A rule's name, as the user wrote it, or the rule a group or repetition was generated in.</summary>
    private sealed class Symbol(string name, bool generated)
    {
        public string Name { get; } = name;

        public bool Generated { get; } = generated;

        public List<Element>? Rule { get; set; }

        public int DefinedAt { get; set; } = -1;

        public int FirstReferencedAt { get; set; } = -1;

        public string Describe() => Generated ? $"a group or repetition in rule '{Name}'" : $"rule '{Name}'";
    }

    /// <summary>
    /// A recursive-descent parser over the UTF-8 text with the same grammar, the same rewriting of repetitions into
    /// generated rules (their count feeds llama.cpp's repetition limit) and the same post-parse checks as llama.cpp.
    /// </summary>
    private sealed class Parser(byte[] text)
    {
        private const ulong Unbounded = ulong.MaxValue;

        private readonly byte[] _text = text;
        private readonly Dictionary<string, int> _symbolIds = new(StringComparer.Ordinal);
        private readonly List<Symbol> _symbols = [];
        private int _elements;
        private int _nesting;

        public void ParseGrammar()
        {
            var pos = SkipSpace(0, newlineOk: true);
            while (At(pos) != 0)
            {
                pos = ParseRule(pos);
            }

            if (_symbols.Count == 0)
            {
                throw new FormatException("the grammar is empty: it defines no rules.");
            }
        }

        /// <summary>Every referenced rule is defined, and so is the root (llama.cpp: "Undefined rule identifier").</summary>
        public void CheckReferences(string rootRule)
        {
            var undefined = _symbols
                .Where(symbol => symbol.Rule is null)
                .OrderBy(symbol => symbol.FirstReferencedAt)
                .Select(symbol => $"{Location(symbol.FirstReferencedAt)}: undefined rule '{symbol.Name}'")
                .ToList();
            if (undefined.Count > 0)
            {
                throw new FormatException(string.Join("; ", undefined) + ".");
            }

            if (!_symbolIds.ContainsKey(rootRule))
            {
                throw new FormatException($"the grammar has no '{rootRule}' rule, where generation starts.");
            }
        }

        /// <summary>
        /// llama.cpp refuses left recursion, but its check only looks through rules with a literally empty
        /// alternative; left recursion through a rule that is merely nullable (<c>(x?)</c>, <c>(a* b*)</c>) gets past
        /// it and makes <c>llama_grammar_init_impl</c> grow its stacks until memory runs out. So a rule here is
        /// nullable when it can match the empty string at all, and any cycle of rule references reachable at the
        /// start of an alternative through nullable rules is refused. The depth and work of llama.cpp's own check,
        /// which recurses natively and revisits shared rules, are bounded too.
        /// </summary>
        public void CheckLeftRecursion()
        {
            var count = _symbols.Count;
            var nullable = NullableRules();
            var edges = new List<int>[count];
            for (var i = 0; i < count; i++)
            {
                edges[i] = LeftReferences(_symbols[i].Rule!, nullable);
            }

            var order = TopologicalOrder(edges);

            // Post-order: a rule's cost and depth depend on the rules it reaches first.
            var steps = new long[count];
            var depth = new int[count];
            foreach (var rule in order)
            {
                long ruleSteps = _symbols[rule].Rule!.Count;
                var ruleDepth = 0;
                foreach (var next in edges[rule])
                {
                    ruleSteps = Math.Min(MaxLeftCheckSteps + 1, ruleSteps + steps[next]);
                    ruleDepth = Math.Max(ruleDepth, depth[next]);
                }

                steps[rule] = ruleSteps;
                depth[rule] = ruleDepth + 1;
                if (depth[rule] > MaxLeftDepth)
                {
                    throw new FormatException(
                        $"{Location(DefinitionOf(_symbols[rule]))}: {_symbols[rule].Describe()} starts a chain of more than {MaxLeftDepth} rules that each begin with the next; llama.cpp's left-recursion check would run out of stack.");
                }
            }

            // llama.cpp starts a check from each rule in id order that no earlier check reached.
            var reached = new bool[count];
            long total = 0;
            for (var i = 0; i < count; i++)
            {
                if (reached[i])
                {
                    continue;
                }

                total = Math.Min(MaxLeftCheckSteps + 1, total + steps[i]);
                if (total > MaxLeftCheckSteps)
                {
                    throw new FormatException(
                        $"the grammar has too many ways to begin a rule with other rules (llama.cpp's left-recursion check would take more than {MaxLeftCheckSteps:N0} steps); factor out the shared leading rules.");
                }

                MarkReached(i, edges, reached);
            }
        }

        /// <summary>Which rules can match the empty string: a worklist over the alternatives made only of references.</summary>
        private bool[] NullableRules()
        {
            var count = _symbols.Count;
            var nullable = new bool[count];
            var pendingReferences = new List<int>();
            var alternativeOwner = new List<int>();
            var users = new List<int>?[count];
            var queue = new Queue<int>();
            for (var rule = 0; rule < count; rule++)
            {
                var elements = _symbols[rule].Rule!;
                var start = 0;
                for (var i = 0; i < elements.Count; i++)
                {
                    if (elements[i].Kind is not (ElementKind.End or ElementKind.Alternative))
                    {
                        continue;
                    }

                    var alternative = elements.GetRange(start, i - start);
                    start = i + 1;
                    if (alternative.Exists(element => element.Kind != ElementKind.RuleReference))
                    {
                        continue;
                    }

                    if (alternative.Count == 0)
                    {
                        if (!nullable[rule])
                        {
                            nullable[rule] = true;
                            queue.Enqueue(rule);
                        }

                        continue;
                    }

                    var id = pendingReferences.Count;
                    pendingReferences.Add(alternative.Count);
                    alternativeOwner.Add(rule);
                    foreach (var reference in alternative)
                    {
                        (users[reference.Value] ??= []).Add(id);
                    }
                }
            }

            while (queue.Count > 0)
            {
                var rule = queue.Dequeue();
                foreach (var alternative in users[rule] ?? [])
                {
                    var owner = alternativeOwner[alternative];
                    if (--pendingReferences[alternative] == 0 && !nullable[owner])
                    {
                        nullable[owner] = true;
                        queue.Enqueue(owner);
                    }
                }
            }

            return nullable;
        }

        /// <summary>
        /// The references that can start a match of the rule, in order, duplicates kept (llama.cpp's check
        /// revisits them; its own list is a subset of this one).
        /// </summary>
        private static List<int> LeftReferences(List<Element> rule, bool[] nullable)
        {
            var references = new List<int>();
            var leftmost = true;
            foreach (var element in rule)
            {
                if (element.Kind == ElementKind.RuleReference && leftmost)
                {
                    references.Add((int)element.Value);
                    leftmost = nullable[element.Value];
                }
                else
                {
                    leftmost = element.Kind is ElementKind.End or ElementKind.Alternative;
                }
            }

            return references;
        }

        /// <summary>Rules in post-order of the left-reference graph, or the left-recursive cycle as an error.</summary>
        private List<int> TopologicalOrder(List<int>[] edges)
        {
            const byte Unseen = 0;
            const byte OnPath = 1;
            const byte Done = 2;
            var state = new byte[edges.Length];
            var order = new List<int>(edges.Length);
            var path = new Stack<(int Rule, int NextEdge)>();
            for (var start = 0; start < edges.Length; start++)
            {
                if (state[start] != Unseen)
                {
                    continue;
                }

                state[start] = OnPath;
                path.Push((start, 0));
                while (path.Count > 0)
                {
                    var (rule, nextEdge) = path.Pop();
                    if (nextEdge == edges[rule].Count)
                    {
                        state[rule] = Done;
                        order.Add(rule);
                        continue;
                    }

                    path.Push((rule, nextEdge + 1));
                    var next = edges[rule][nextEdge];
                    if (state[next] == OnPath)
                    {
                        throw LeftRecursion(path.Select(frame => frame.Rule).Reverse().ToList(), next);
                    }

                    if (state[next] == Unseen)
                    {
                        state[next] = OnPath;
                        path.Push((next, 0));
                    }
                }
            }

            return order;
        }

        private FormatException LeftRecursion(List<int> path, int repeated)
        {
            var cycle = path.Skip(path.IndexOf(repeated)).Append(repeated);
            var names = new List<string>();
            foreach (var rule in cycle)
            {
                var name = _symbols[rule].Name;
                if (names.Count == 0 || names[^1] != name || rule == repeated)
                {
                    names.Add(name);
                }
            }

            var first = _symbols[repeated];
            return new FormatException(
                $"{Location(DefinitionOf(first))}: {first.Describe()} is left-recursive ({string.Join(" -> ", names)}): it can begin with itself, which llama.cpp does not support; rewrite it with repetition, e.g. 'list ::= item (\",\" item)*'.");
        }

        /// <summary>Where a rule, or the user rule a generated rule belongs to, is defined.</summary>
        private int DefinitionOf(Symbol symbol) => symbol.Generated ? _symbols[_symbolIds[symbol.Name]].DefinedAt : symbol.DefinedAt;

        private static void MarkReached(int start, List<int>[] edges, bool[] reached)
        {
            var pending = new Stack<int>();
            pending.Push(start);
            reached[start] = true;
            while (pending.Count > 0)
            {
                foreach (var next in edges[pending.Pop()])
                {
                    if (!reached[next])
                    {
                        reached[next] = true;
                        pending.Push(next);
                    }
                }
            }
        }

        private byte At(int pos) => pos < _text.Length ? _text[pos] : (byte)0;

        private static bool IsDigit(byte c) => c is >= (byte)'0' and <= (byte)'9';

        private static bool IsWordChar(byte c) => c is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or (byte)'-' || IsDigit(c);

        /// <summary>Spaces, tabs and # comments; line breaks too where a rule may continue on the next line.</summary>
        private int SkipSpace(int pos, bool newlineOk)
        {
            while (true)
            {
                var c = At(pos);
                if (c == '#')
                {
                    while (At(pos) is not (0 or (byte)'\r' or (byte)'\n'))
                    {
                        pos++;
                    }
                }
                else if (c is (byte)' ' or (byte)'\t' || (newlineOk && c is (byte)'\r' or (byte)'\n'))
                {
                    pos++;
                }
                else
                {
                    return pos;
                }
            }
        }

        private int ParseName(int pos)
        {
            var end = pos;
            while (IsWordChar(At(end)))
            {
                end++;
            }

            if (end == pos)
            {
                throw Error(pos, "expecting a rule name (letters, digits and '-')");
            }

            return end;
        }

        private ulong ParseCount(int pos, out int end)
        {
            end = pos;
            while (IsDigit(At(end)))
            {
                end++;
            }

            if (end == pos)
            {
                throw Error(pos, "expecting an integer");
            }

            // llama.cpp reads counts with std::stoull, which refuses values beyond 64 bits.
            if (!ulong.TryParse(_text.AsSpan(pos, end - pos), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                throw Error(pos, "the number is too large");
            }

            return value;
        }

        /// <summary>One character of a literal or class: an escape or one UTF-8 encoded code point.</summary>
        private (uint Value, int End) ParseChar(int pos)
        {
            var c = At(pos);
            if (c == '\\')
            {
                var escape = At(pos + 1);
                switch (escape)
                {
                    case (byte)'x':
                        return ParseHex(pos, 2);
                    case (byte)'u':
                        return ParseHex(pos, 4);
                    case (byte)'U':
                        return ParseHex(pos, 8);
                    case (byte)'t':
                        return ('\t', pos + 2);
                    case (byte)'r':
                        return ('\r', pos + 2);
                    case (byte)'n':
                        return ('\n', pos + 2);
                    case (byte)'\\' or (byte)'"' or (byte)'[' or (byte)']':
                        return (escape, pos + 2);
                    case 0:
                        throw Error(pos, "unexpected end of input after '\\'");
                    default:
                        // llama.cpp at this version knows no other escape (not even \- or \/).
                        throw Error(pos, "unknown escape; use \\x, \\u, \\U, \\t, \\r, \\n, \\\\, \\\", \\[ or \\]");
                }
            }

            if (c == 0)
            {
                throw Error(pos, "unexpected end of input");
            }

            var status = System.Text.Rune.DecodeFromUtf8(_text.AsSpan(pos), out var rune, out var length);
            if (status != System.Buffers.OperationStatus.Done)
            {
                throw Error(pos, "invalid UTF-8");
            }

            return ((uint)rune.Value, pos + length);
        }

        private (uint Value, int End) ParseHex(int escapeStart, int digits)
        {
            var pos = escapeStart + 2;
            uint value = 0;
            for (var i = 0; i < digits; i++, pos++)
            {
                var c = At(pos);
                int digit = c switch
                {
                    >= (byte)'0' and <= (byte)'9' => c - '0',
                    >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
                    >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
                    _ => -1,
                };
                if (digit < 0)
                {
                    throw Error(escapeStart, $"expecting {digits} hex digits after '\\{(char)At(escapeStart + 1)}'");
                }

                value = (value << 4) | (uint)digit;
            }

            return (value, pos);
        }

        private int ParseRule(int pos)
        {
            var nameEnd = ParseName(pos);
            var name = Encoding.UTF8.GetString(_text, pos, nameEnd - pos);
            var id = SymbolId(name, pos);
            var symbol = _symbols[id];
            if (symbol.DefinedAt >= 0)
            {
                throw Error(pos, $"rule '{name}' is defined twice (first at {Location(symbol.DefinedAt)}); write its alternatives with '|' in one rule");
            }

            symbol.DefinedAt = pos;
            var next = SkipSpace(nameEnd, newlineOk: false);
            if (!(At(next) == ':' && At(next + 1) == ':' && At(next + 2) == '='))
            {
                throw Error(next, $"expecting '::=' after the rule name '{name}'");
            }

            next = SkipSpace(next + 3, newlineOk: true);
            next = ParseAlternatives(next, name, id, nested: false);

            if (At(next) == '\r')
            {
                next += At(next + 1) == '\n' ? 2 : 1;
            }
            else if (At(next) == '\n')
            {
                next++;
            }
            else if (At(next) != 0)
            {
                throw Error(next, At(next) == ')'
                    ? $"unbalanced ')' in rule '{name}'"
                    : $"unexpected text in rule '{name}' (expecting a rule item, '|' or the end of the line)");
            }

            return SkipSpace(next, newlineOk: true);
        }

        private int ParseAlternatives(int pos, string ruleName, int ruleId, bool nested)
        {
            var rule = new List<Element>();
            pos = ParseSequence(pos, ruleName, rule, nested);
            while (At(pos) == '|')
            {
                Add(rule, new Element(ElementKind.Alternative, 0));
                pos = SkipSpace(pos + 1, newlineOk: true);
                pos = ParseSequence(pos, ruleName, rule, nested);
            }

            Add(rule, new Element(ElementKind.End, 0));
            _symbols[ruleId].Rule = rule;
            return pos;
        }

        private int ParseSequence(int pos, string ruleName, List<Element> rule, bool nested)
        {
            // As in llama.cpp: where the last item starts (a repetition applies to it) and how many rules it
            // generated (a repetition multiplies them, up to MaxRepetitions).
            var lastItemStart = rule.Count;
            ulong lastItemRules = 1;

            while (true)
            {
                var start = pos;
                var c = At(pos);
                if (c == '"')
                {
                    pos++;
                    lastItemStart = rule.Count;
                    lastItemRules = 1;
                    while (At(pos) != '"')
                    {
                        if (At(pos) == 0)
                        {
                            throw Error(start, "unterminated string literal: expecting a closing '\"'");
                        }

                        (var value, pos) = ParseChar(pos);
                        Add(rule, new Element(ElementKind.Char, value));
                    }

                    pos = SkipSpace(pos + 1, nested);
                }
                else if (c == '[')
                {
                    lastItemStart = rule.Count;
                    lastItemRules = 1;
                    pos = SkipSpace(ParseCharClass(pos, rule), nested);
                }
                else if (c is (byte)'<' or (byte)'!')
                {
                    // llama.cpp reads <[id]>, !<[id]> and <text> here. Whether the token exists and is not an
                    // end-of-generation token depends on the model, and a grammar that requires a token that can
                    // never be sampled makes llama.cpp throw through the C API at sampling time, ending the process.
                    throw Error(pos, "token references (<[id]>, !<[id]>, <text>) are not accepted; write the text the token stands for as a string");
                }
                else if (IsWordChar(c))
                {
                    var end = ParseName(pos);
                    var id = SymbolId(Encoding.UTF8.GetString(_text, pos, end - pos), pos);
                    pos = SkipSpace(end, nested);
                    lastItemStart = rule.Count;
                    lastItemRules = 1;
                    Add(rule, new Element(ElementKind.RuleReference, (uint)id));
                }
                else if (c == '(')
                {
                    if (++_nesting > MaxNesting)
                    {
                        throw Error(pos, $"groups are nested more than {MaxNesting} deep");
                    }

                    pos = SkipSpace(pos + 1, newlineOk: true);
                    var symbolsBefore = _symbols.Count;
                    var groupId = GenerateSymbol(ruleName);
                    pos = ParseAlternatives(pos, ruleName, groupId, nested: true);
                    lastItemRules = (ulong)Math.Max(1, _symbols.Count - symbolsBefore);
                    lastItemStart = rule.Count;
                    Add(rule, new Element(ElementKind.RuleReference, (uint)groupId));
                    if (At(pos) != ')')
                    {
                        throw Error(pos, $"expecting ')' to close the '(' at {Location(start)}");
                    }

                    _nesting--;
                    pos = SkipSpace(pos + 1, nested);
                }
                else if (c == '.')
                {
                    lastItemStart = rule.Count;
                    lastItemRules = 1;
                    Add(rule, new Element(ElementKind.CharAny, 0));
                    pos = SkipSpace(pos + 1, nested);
                }
                else if (c is (byte)'*' or (byte)'+' or (byte)'?')
                {
                    pos = SkipSpace(pos + 1, nested);
                    var (min, max) = c switch
                    {
                        (byte)'*' => (0UL, Unbounded),
                        (byte)'+' => (1UL, Unbounded),
                        _ => (0UL, 1UL),
                    };
                    Repeat(start, ruleName, rule, lastItemStart, ref lastItemRules, min, max);
                }
                else if (c == '{')
                {
                    pos = ParseRepetitionCounts(pos, nested, out var min, out var max);
                    Repeat(start, ruleName, rule, lastItemStart, ref lastItemRules, min, max);
                }
                else
                {
                    return pos;
                }
            }
        }

        /// <summary>Parses <c>[...]</c> at <paramref name="pos"/>; returns the position after the closing bracket.</summary>
        private int ParseCharClass(int pos, List<Element> rule)
        {
            var start = pos;
            pos++;
            var firstKind = ElementKind.Char;
            if (At(pos) == '^')
            {
                pos++;
                firstKind = ElementKind.CharNot;
            }

            var firstElement = rule.Count;
            while (At(pos) != ']')
            {
                if (At(pos) == 0)
                {
                    throw Error(start, "unterminated character class: expecting a closing ']'");
                }

                var charStart = pos;
                (var low, pos) = ParseChar(pos);
                Add(rule, new Element(rule.Count > firstElement ? ElementKind.CharAlternative : firstKind, low));
                if (At(pos) == '-' && At(pos + 1) != ']')
                {
                    if (At(pos + 1) == 0)
                    {
                        throw Error(start, "unterminated character class: expecting a closing ']'");
                    }

                    (var high, pos) = ParseChar(pos + 1);
                    if (high < low)
                    {
                        throw Error(charStart, $"the range U+{low:X4}-U+{high:X4} is reversed");
                    }

                    Add(rule, new Element(ElementKind.CharRangeUpper, high));
                }
            }

            // llama.cpp turns [] and [^] into nothing at all, matching the empty string: never what was meant.
            if (rule.Count == firstElement)
            {
                throw Error(start, "empty character class; use . for any character");
            }

            return pos + 1;
        }

        private int ParseRepetitionCounts(int pos, bool nested, out ulong min, out ulong max)
        {
            var start = pos;
            pos = SkipSpace(pos + 1, nested);
            if (!IsDigit(At(pos)))
            {
                throw Error(pos, "expecting a repetition count after '{'");
            }

            min = ParseCount(pos, out pos);
            pos = SkipSpace(pos, nested);
            max = Unbounded;
            if (At(pos) == '}')
            {
                max = min;
                pos = SkipSpace(pos + 1, nested);
            }
            else if (At(pos) == ',')
            {
                pos = SkipSpace(pos + 1, nested);
                if (IsDigit(At(pos)))
                {
                    max = ParseCount(pos, out pos);
                    pos = SkipSpace(pos, nested);
                }

                if (At(pos) != '}')
                {
                    throw Error(pos, "expecting '}' to close the repetition");
                }

                pos = SkipSpace(pos + 1, nested);
            }
            else
            {
                throw Error(pos, "expecting ',' or '}' in the repetition");
            }

            if (min > MaxRepetitions || (max != Unbounded && max > MaxRepetitions))
            {
                throw Error(start, $"repetition counts above {MaxRepetitions} are not supported by llama.cpp");
            }

            if (max < min)
            {
                throw Error(start, $"the repetition's maximum ({max}) is below its minimum ({min})");
            }

            return pos;
        }

        /// <summary>
        /// Rewrites the last item as llama.cpp does: S{m,n} becomes m copies of S followed by a chain of n - m
        /// generated optional rules (one self-referencing rule when unbounded).
        /// </summary>
        private void Repeat(int operatorPos, string ruleName, List<Element> rule, int lastItemStart, ref ulong lastItemRules, ulong min, ulong max)
        {
            if (lastItemStart == rule.Count)
            {
                throw Error(operatorPos, $"'{(char)At(operatorPos)}' must follow an item to repeat (and \"\" or x{{0}} is nothing)");
            }

            var unbounded = max == Unbounded;
            var generatedPerCopy = !unbounded && max > 0 ? max : min > 0 ? min : 1;
            if (lastItemRules * generatedPerCopy >= MaxRepetitions)
            {
                throw Error(operatorPos, $"this repetition would make llama.cpp generate {lastItemRules * generatedPerCopy} or more rules (its limit is {MaxRepetitions}); repeat fewer times or a simpler item");
            }

            var item = rule.GetRange(lastItemStart, rule.Count - lastItemStart);
            if (min == 0)
            {
                _elements -= item.Count;
                rule.RemoveRange(lastItemStart, item.Count);
            }
            else
            {
                for (ulong i = 1; i < min; i++)
                {
                    AddRange(rule, item);
                }
            }

            var optionalCopies = unbounded ? 1 : max - min;
            var lastGenerated = 0;
            for (ulong i = 0; i < optionalCopies; i++)
            {
                var generated = GenerateSymbol(ruleName);
                var optional = new List<Element>(item.Count + 3);
                AddRange(optional, item);
                if (i > 0 || unbounded)
                {
                    Add(optional, new Element(ElementKind.RuleReference, (uint)(unbounded ? generated : lastGenerated)));
                }

                Add(optional, new Element(ElementKind.Alternative, 0));
                Add(optional, new Element(ElementKind.End, 0));
                _symbols[generated].Rule = optional;
                lastGenerated = generated;
            }

            if (optionalCopies > 0)
            {
                Add(rule, new Element(ElementKind.RuleReference, (uint)lastGenerated));
            }

            lastItemRules *= generatedPerCopy;
        }

        private void Add(List<Element> rule, Element element)
        {
            if (++_elements > MaxElements)
            {
                throw TooLarge();
            }

            rule.Add(element);
        }

        private void AddRange(List<Element> rule, List<Element> elements)
        {
            _elements += elements.Count;
            if (_elements > MaxElements)
            {
                throw TooLarge();
            }

            rule.AddRange(elements);
        }

        private static FormatException TooLarge() =>
            new($"the grammar expands to more than {MaxElements:N0} elements once its repetitions are unrolled; use fewer or smaller repetitions.");

        /// <summary>llama.cpp's <c>get_symbol_id</c>: a name's id, given on first sight (definition or reference).</summary>
        private int SymbolId(string name, int pos)
        {
            if (!_symbolIds.TryGetValue(name, out var id))
            {
                id = _symbols.Count;
                _symbolIds.Add(name, id);
                _symbols.Add(new Symbol(name, generated: false) { FirstReferencedAt = pos });
            }

            return id;
        }

        /// <summary>llama.cpp's <c>generate_symbol_id</c>: a fresh rule for a group or repetition.</summary>
        private int GenerateSymbol(string ruleName)
        {
            _symbols.Add(new Symbol(ruleName, generated: true));
            return _symbols.Count - 1;
        }

        private FormatException Error(int pos, string message)
        {
            string found;
            if (At(pos) == 0)
            {
                found = "end of input";
            }
            else
            {
                var end = pos;
                while (end < _text.Length && (end - pos < 20 || (_text[end] & 0xC0) == 0x80) && _text[end] is not ((byte)'\r' or (byte)'\n'))
                {
                    end++;
                }

                found = end == pos ? "end of line" : "'" + Encoding.UTF8.GetString(_text, pos, end - pos) + "'";
            }

            return new FormatException($"{Location(pos)}: {message}, found {found}.");
        }

        /// <summary>1-based line and column (in characters) of a byte offset.</summary>
        private string Location(int pos)
        {
            var line = 1;
            var column = 1;
            for (var i = 0; i < pos && i < _text.Length; i++)
            {
                var b = _text[i];
                if (b == '\n' || (b == '\r' && At(i + 1) != '\n'))
                {
                    line++;
                    column = 1;
                }
                else if ((b & 0xC0) != 0x80 && b != '\r')
                {
                    column++;
                }
            }

            return $"line {line}, column {column}";
        }
    }
}
