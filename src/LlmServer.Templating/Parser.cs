using System.Globalization;

namespace LlmServer.Templating;

/// <summary>Recursive-descent parser from tokens to the template's statement list, with Jinja's precedence.</summary>
internal sealed class Parser
{
    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", ">", "<=", ">="];

    private readonly List<Token> _tokens;
    private readonly string _source;
    private int _pos;

    private Parser(List<Token> tokens, string source)
    {
        _tokens = tokens;
        _source = source;
    }

    public static IReadOnlyList<Node> Parse(List<Token> tokens, string source)
    {
        var parser = new Parser(tokens, source);
        var body = parser.ParseBody(out var end);
        if (end is not null)
        {
            throw parser.Error($"unexpected '{end}'", parser.Current.Offset);
        }

        return body;
    }

    private Token Current => _pos < _tokens.Count ? _tokens[_pos] : new Token(TokenKind.End, string.Empty, _source.Length);

    private Token Peek(int ahead = 1) =>
        _pos + ahead < _tokens.Count ? _tokens[_pos + ahead] : new Token(TokenKind.End, string.Empty, _source.Length);

    private Token Advance() => _tokens.Count > _pos ? _tokens[_pos++] : Current;

    private bool IsOp(string op) => Current.Kind == TokenKind.Operator && Current.Value == op;

    private bool IsName(string name) => Current.Kind == TokenKind.Name && Current.Value == name;

    private void ExpectOp(string op)
    {
        if (!IsOp(op))
        {
            throw Error($"expected '{op}', got '{Describe(Current)}'", Current.Offset);
        }

        _pos++;
    }

    private string ExpectName()
    {
        if (Current.Kind != TokenKind.Name)
        {
            throw Error($"expected a name, got '{Describe(Current)}'", Current.Offset);
        }

        return Advance().Value;
    }

    private void ExpectKind(TokenKind kind, string what)
    {
        if (Current.Kind != kind)
        {
            throw Error($"expected {what}, got '{Describe(Current)}'", Current.Offset);
        }

        _pos++;
    }

    private static string Describe(Token token) => token.Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.CloseStatement => "%}",
        TokenKind.CloseExpression => "}}",
        _ => token.Value,
    };

    private TemplateException Error(string reason, int offset)
    {
        var (line, column) = Lexer.Position(_source, offset);
        return new TemplateException(reason, line, column);
    }

    // Parses statements until an end keyword (endif, else, ...) or the end of the template; returns that keyword.
    private List<Node> ParseBody(out string? endKeyword, params string[] endKeywords)
    {
        var body = new List<Node>();
        while (Current.Kind != TokenKind.End)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Text:
                    body.Add(new TextNode(token.Offset, token.Value));
                    _pos++;
                    break;
                case TokenKind.OpenExpression:
                    _pos++;
                    var expression = ParseExpression();
                    ExpectKind(TokenKind.CloseExpression, "'}}'");
                    body.Add(new Output(token.Offset, expression));
                    break;
                case TokenKind.OpenStatement:
                    var keyword = Peek();
                    if (keyword.Kind == TokenKind.Name && Array.IndexOf(endKeywords, keyword.Value) >= 0)
                    {
                        _pos += 2;
                        endKeyword = keyword.Value;
                        return body;
                    }

                    _pos++;
                    body.Add(ParseStatement());
                    break;
                default:
                    throw Error($"unexpected '{Describe(token)}'", token.Offset);
            }
        }

        if (endKeywords.Length > 0)
        {
            throw Error($"unexpected end of template, expected '{string.Join("' or '", endKeywords)}'", _source.Length);
        }

        endKeyword = null;
        return body;
    }

    private void EndStatement() => ExpectKind(TokenKind.CloseStatement, "'%}'");

    private Node ParseStatement()
    {
        var token = Current;
        var keyword = ExpectName();
        switch (keyword)
        {
            case "if":
                return ParseIf(token.Offset);
            case "for":
                return ParseFor(token.Offset);
            case "set":
                return ParseSet(token.Offset);
            case "macro":
                return ParseMacro(token.Offset);
            case "call":
                return ParseCallBlock(token.Offset);
            case "filter":
                {
                    var filter = ParseFilterCall(null);
                    EndStatement();
                    var body = ParseBody(out _, "endfilter");
                    EndStatement();
                    return new FilterBlock(token.Offset, filter, body);
                }

            case "generation":
                {
                    EndStatement();
                    var body = ParseBody(out _, "endgeneration");
                    EndStatement();
                    return new ScopeBlock(token.Offset, body);
                }

            case "do":
                {
                    var expression = ParseExpression();
                    EndStatement();
                    return new ExpressionStatement(token.Offset, expression);
                }

            case "break":
            case "continue":
                EndStatement();
                return new LoopControl(token.Offset, keyword == "break");
            default:
                throw Error($"unknown statement '{keyword}'", token.Offset);
        }
    }

    private IfNode ParseIf(int offset)
    {
        var branches = new List<(Node, IReadOnlyList<Node>)>();
        var test = ParseExpression();
        EndStatement();
        while (true)
        {
            var body = ParseBody(out var end, "elif", "else", "endif");
            branches.Add((test, body));
            if (end == "elif")
            {
                test = ParseExpression();
                EndStatement();
                continue;
            }

            if (end == "else")
            {
                EndStatement();
                var elseBody = ParseBody(out _, "endif");
                EndStatement();
                return new IfNode(offset, branches, elseBody);
            }

            EndStatement();
            return new IfNode(offset, branches, null);
        }
    }

    private ForNode ParseFor(int offset)
    {
        var targets = new List<string> { ExpectName() };
        while (IsOp(","))
        {
            _pos++;
            targets.Add(ExpectName());
        }

        if (!IsName("in"))
        {
            throw Error("expected 'in' in for loop", Current.Offset);
        }

        _pos++;
        var iterable = ParseIterable();
        Node? filter = null;
        if (IsName("if"))
        {
            _pos++;
            filter = ParseExpression();
        }

        var recursive = false;
        if (IsName("recursive"))
        {
            _pos++;
            recursive = true;
        }

        EndStatement();
        var body = ParseBody(out var end, "else", "endfor");
        IReadOnlyList<Node>? elseBody = null;
        if (end == "else")
        {
            EndStatement();
            elseBody = ParseBody(out _, "endfor");
        }

        EndStatement();
        return new ForNode(offset, targets, iterable, filter, body, elseBody, recursive);
    }

    // The iterable of a for loop: no conditional expression, so that "for x in y if cond" reads the filter.
    private Node ParseIterable()
    {
        var first = ParseOr();
        if (!IsOp(","))
        {
            return first;
        }

        var items = new List<Node> { first };
        while (IsOp(","))
        {
            _pos++;
            items.Add(ParseOr());
        }

        return new ListExpr(first.Offset, items, true);
    }

    private Node ParseSet(int offset)
    {
        var target = ParseAssignTarget();
        if (IsOp("="))
        {
            _pos++;
            var value = ParseTupleOrExpression();
            EndStatement();
            return new SetNode(offset, target, value);
        }

        FilterExpr? filter = null;
        if (IsOp("|"))
        {
            _pos++;
            filter = ParseFilterCall(null);
            while (IsOp("|"))
            {
                _pos++;
                filter = ParseFilterCall(filter);
            }
        }

        EndStatement();
        var body = ParseBody(out _, "endset");
        EndStatement();
        return new SetBlock(offset, target, body, filter);
    }

    private Node ParseAssignTarget()
    {
        var token = Current;
        var name = ExpectName();
        if (IsOp("."))
        {
            _pos++;
            return new Attribute(token.Offset, new NameRef(token.Offset, name), ExpectName());
        }

        if (!IsOp(","))
        {
            return new NameRef(token.Offset, name);
        }

        var names = new List<Node> { new NameRef(token.Offset, name) };
        while (IsOp(","))
        {
            _pos++;
            var next = Current;
            names.Add(new NameRef(next.Offset, ExpectName()));
        }

        return new ListExpr(token.Offset, names, true);
    }

    private Node ParseTupleOrExpression()
    {
        var first = ParseExpression();
        if (!IsOp(","))
        {
            return first;
        }

        var items = new List<Node> { first };
        while (IsOp(","))
        {
            _pos++;
            if (Current.Kind == TokenKind.CloseStatement)
            {
                break;
            }

            items.Add(ParseExpression());
        }

        return new ListExpr(first.Offset, items, true);
    }

    private MacroNode ParseMacro(int offset)
    {
        var name = ExpectName();
        var parameters = ParseParameters();
        EndStatement();
        var body = ParseBody(out _, "endmacro");
        EndStatement();
        return new MacroNode(offset, name, parameters, body);
    }

    private List<(string, Node?)> ParseParameters()
    {
        var parameters = new List<(string, Node?)>();
        if (!IsOp("("))
        {
            return parameters;
        }

        _pos++;
        while (!IsOp(")"))
        {
            var name = ExpectName();
            Node? fallback = null;
            if (IsOp("="))
            {
                _pos++;
                fallback = ParseExpression();
            }

            parameters.Add((name, fallback));
            if (!IsOp(","))
            {
                break;
            }

            _pos++;
        }

        ExpectOp(")");
        return parameters;
    }

    private CallBlock ParseCallBlock(int offset)
    {
        var parameters = IsOp("(") ? ParseParameters() : [];
        var target = ParsePrimaryWithPostfix();
        if (target is not Call call)
        {
            throw Error("expected a macro call in '{% call %}'", offset);
        }

        EndStatement();
        var body = ParseBody(out _, "endcall");
        EndStatement();
        return new CallBlock(offset, call, parameters, body);
    }

    private FilterExpr ParseFilterCall(Node? target)
    {
        var token = Current;
        var name = ExpectName();
        while (IsOp(".") && Peek().Kind == TokenKind.Name)
        {
            _pos++;
            name += "." + Advance().Value;
        }

        var args = new List<Node>();
        var kwargs = new List<(string, Node)>();
        if (IsOp("("))
        {
            ParseCallArguments(args, kwargs);
        }

        return new FilterExpr(token.Offset, target, name, args, kwargs);
    }

    private void ParseCallArguments(List<Node> args, List<(string, Node)> kwargs)
    {
        ExpectOp("(");
        while (!IsOp(")"))
        {
            if (Current.Kind == TokenKind.Name && Peek().Kind == TokenKind.Operator && Peek().Value == "=")
            {
                var name = Advance().Value;
                _pos++;
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                args.Add(ParseExpression());
            }

            if (!IsOp(","))
            {
                break;
            }

            _pos++;
        }

        ExpectOp(")");
    }

    public Node ParseExpression()
    {
        var body = ParseOr();
        while (IsName("if"))
        {
            var offset = Advance().Offset;
            var test = ParseOr();
            Node? elseBranch = null;
            if (IsName("else"))
            {
                _pos++;
                elseBranch = ParseExpression();
            }

            body = new Conditional(offset, test, body, elseBranch);
        }

        return body;
    }

    private Node ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
        {
            var offset = Advance().Offset;
            left = new Binary(offset, "or", left, ParseAnd());
        }

        return left;
    }

    private Node ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            var offset = Advance().Offset;
            left = new Binary(offset, "and", left, ParseNot());
        }

        return left;
    }

    private Node ParseNot()
    {
        if (IsName("not"))
        {
            var offset = Advance().Offset;
            return new Unary(offset, "not", ParseNot());
        }

        return ParseCompare();
    }

    private Node ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Node)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOps.Contains(Current.Value))
            {
                var op = Advance().Value;
                rest.Add((op, ParseMath1()));
            }
            else if (IsName("in"))
            {
                _pos++;
                rest.Add(("in", ParseMath1()));
            }
            else if (IsName("not") && Peek().Kind == TokenKind.Name && Peek().Value == "in")
            {
                _pos += 2;
                rest.Add(("notin", ParseMath1()));
            }
            else
            {
                break;
            }
        }

        return rest.Count == 0 ? first : new Compare(first.Offset, first, rest);
    }

    private Node ParseMath1()
    {
        var left = ParseConcat();
        while (IsOp("+") || IsOp("-"))
        {
            var token = Advance();
            left = new Binary(token.Offset, token.Value, left, ParseConcat());
        }

        return left;
    }

    private Node ParseConcat()
    {
        var left = ParseMath2();
        while (IsOp("~"))
        {
            var token = Advance();
            left = new Binary(token.Offset, "~", left, ParseMath2());
        }

        return left;
    }

    private Node ParseMath2()
    {
        var left = ParsePow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))
        {
            var token = Advance();
            left = new Binary(token.Offset, token.Value, left, ParsePow());
        }

        return left;
    }

    private Node ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (IsOp("**"))
        {
            var token = Advance();
            left = new Binary(token.Offset, "**", left, ParseUnary(withFilter: true));
        }

        return left;
    }

    private Node ParseUnary(bool withFilter)
    {
        Node node;
        if (IsOp("-") || IsOp("+"))
        {
            var token = Advance();
            var operand = ParseUnary(withFilter: false);
            node = token.Value == "-" ? new Unary(token.Offset, "-", operand) : operand;
        }
        else
        {
            node = ParsePrimaryWithPostfix();
        }

        return withFilter ? ParseFilterAndTests(node) : node;
    }

    private Node ParseFilterAndTests(Node node)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                _pos++;
                node = ParseFilterCall(node);
            }
            else if (IsName("is"))
            {
                node = ParseTest(node);
            }
            else if (IsOp("(") && node is FilterExpr or TestExpr)
            {
                node = ParsePostfix(node);
            }
            else
            {
                return node;
            }
        }
    }

    private TestExpr ParseTest(Node target)
    {
        var offset = Advance().Offset;
        var negated = false;
        if (IsName("not"))
        {
            _pos++;
            negated = true;
        }

        var name = ExpectName();
        var args = new List<Node>();
        if (IsOp("("))
        {
            var kwargs = new List<(string, Node)>();
            ParseCallArguments(args, kwargs);
            args.AddRange(kwargs.Select(k => k.Item2));
        }
        else if (StartsTestArgument())
        {
            args.Add(ParsePrimaryWithPostfix());
        }

        return new TestExpr(offset, target, name, negated, args);
    }

    private bool StartsTestArgument() => Current.Kind switch
    {
        TokenKind.String or TokenKind.Integer or TokenKind.Float => true,
        TokenKind.Name => Current.Value is not ("else" or "or" or "and" or "if" or "is" or "in" or "not"),
        TokenKind.Operator => Current.Value is "[" or "{",
        _ => false,
    };

    private Node ParsePrimaryWithPostfix() => ParsePostfix(ParsePrimary());

    private Node ParsePostfix(Node node)
    {
        while (true)
        {
            var token = Current;
            if (IsOp("."))
            {
                _pos++;
                if (Current.Kind == TokenKind.Integer)
                {
                    node = new Index(token.Offset, node, new Literal(token.Offset, long.Parse(Advance().Value, CultureInfo.InvariantCulture)));
                }
                else
                {
                    node = new Attribute(token.Offset, node, ExpectName());
                }
            }
            else if (IsOp("["))
            {
                _pos++;
                node = ParseSubscript(token.Offset, node);
            }
            else if (IsOp("("))
            {
                var args = new List<Node>();
                var kwargs = new List<(string, Node)>();
                ParseCallArguments(args, kwargs);
                node = new Call(token.Offset, node, args, kwargs);
            }
            else
            {
                return node;
            }
        }
    }

    private Node ParseSubscript(int offset, Node target)
    {
        Node? start = null;
        if (!IsOp(":"))
        {
            start = ParseExpression();
            if (IsOp("]"))
            {
                _pos++;
                return new Index(offset, target, start);
            }
        }

        ExpectOp(":");
        Node? stop = null;
        Node? step = null;
        if (!IsOp(":") && !IsOp("]"))
        {
            stop = ParseExpression();
        }

        if (IsOp(":"))
        {
            _pos++;
            if (!IsOp("]"))
            {
                step = ParseExpression();
            }
        }

        ExpectOp("]");
        return new Slice(offset, target, start, stop, step);
    }

    private Node ParsePrimary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                _pos++;
                return token.Value switch
                {
                    "true" or "True" => new Literal(token.Offset, true),
                    "false" or "False" => new Literal(token.Offset, false),
                    "none" or "None" => new Literal(token.Offset, null),
                    _ => new NameRef(token.Offset, token.Value),
                };
            case TokenKind.String:
                {
                    var text = Advance().Value;
                    while (Current.Kind == TokenKind.String)
                    {
                        text += Advance().Value;
                    }

                    return new Literal(token.Offset, text);
                }

            case TokenKind.Integer:
                _pos++;
                return new Literal(token.Offset, long.Parse(token.Value, CultureInfo.InvariantCulture));
            case TokenKind.Float:
                _pos++;
                return new Literal(token.Offset, double.Parse(token.Value, CultureInfo.InvariantCulture));
            case TokenKind.Operator when token.Value == "(":
                {
                    _pos++;
                    if (IsOp(")"))
                    {
                        _pos++;
                        return new ListExpr(token.Offset, [], true);
                    }

                    var first = ParseExpression();
                    if (IsOp(")"))
                    {
                        _pos++;
                        return first;
                    }

                    var items = new List<Node> { first };
                    while (IsOp(","))
                    {
                        _pos++;
                        if (IsOp(")"))
                        {
                            break;
                        }

                        items.Add(ParseExpression());
                    }

                    ExpectOp(")");
                    return new ListExpr(token.Offset, items, true);
                }

            case TokenKind.Operator when token.Value == "[":
                {
                    _pos++;
                    var items = new List<Node>();
                    while (!IsOp("]"))
                    {
                        items.Add(ParseExpression());
                        if (!IsOp(","))
                        {
                            break;
                        }

                        _pos++;
                    }

                    ExpectOp("]");
                    return new ListExpr(token.Offset, items, false);
                }

            case TokenKind.Operator when token.Value == "{":
                {
                    _pos++;
                    var items = new List<(Node, Node)>();
                    while (!IsOp("}"))
                    {
                        var key = ParseExpression();
                        ExpectOp(":");
                        items.Add((key, ParseExpression()));
                        if (!IsOp(","))
                        {
                            break;
                        }

                        _pos++;
                    }

                    ExpectOp("}");
                    return new DictExpr(token.Offset, items);
                }

            default:
                throw Error($"unexpected '{Describe(token)}'", token.Offset);
        }
    }
}
