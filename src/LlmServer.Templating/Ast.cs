namespace LlmServer.Templating;

/// <summary>A node of a parsed template; <see cref="Offset"/> is its place in the source, for errors.</summary>
internal abstract record Node(int Offset);

// Expressions.
internal sealed record Literal(int Offset, object? Value) : Node(Offset);

internal sealed record NameRef(int Offset, string Name) : Node(Offset);

internal sealed record ListExpr(int Offset, IReadOnlyList<Node> Items, bool IsTuple) : Node(Offset);

internal sealed record DictExpr(int Offset, IReadOnlyList<(Node Key, Node Value)> Items) : Node(Offset);

internal sealed record Attribute(int Offset, Node Target, string Name) : Node(Offset);

internal sealed record Index(int Offset, Node Target, Node Key) : Node(Offset);

internal sealed record Slice(int Offset, Node Target, Node? Start, Node? Stop, Node? Step) : Node(Offset);

internal sealed record Call(int Offset, Node Target, IReadOnlyList<Node> Args, IReadOnlyList<(string Name, Node Value)> Kwargs) : Node(Offset);

internal sealed record FilterExpr(int Offset, Node? Target, string Name, IReadOnlyList<Node> Args, IReadOnlyList<(string Name, Node Value)> Kwargs) : Node(Offset);

internal sealed record TestExpr(int Offset, Node Target, string Name, bool Negated, IReadOnlyList<Node> Args) : Node(Offset);

internal sealed record Unary(int Offset, string Op, Node Operand) : Node(Offset);

internal sealed record Binary(int Offset, string Op, Node Left, Node Right) : Node(Offset);

internal sealed record Compare(int Offset, Node First, IReadOnlyList<(string Op, Node Operand)> Rest) : Node(Offset);

internal sealed record Conditional(int Offset, Node Test, Node Then, Node? Else) : Node(Offset);

// Statements.
internal sealed record TextNode(int Offset, string Text) : Node(Offset);

internal sealed record Output(int Offset, Node Expression) : Node(Offset);

internal sealed record IfNode(int Offset, IReadOnlyList<(Node Test, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node>? Else) : Node(Offset);

internal sealed record ForNode(int Offset, IReadOnlyList<string> Targets, Node Iterable, Node? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else, bool Recursive) : Node(Offset);

internal sealed record SetNode(int Offset, Node Target, Node Value) : Node(Offset);

internal sealed record SetBlock(int Offset, Node Target, IReadOnlyList<Node> Body, FilterExpr? Filter) : Node(Offset);

internal sealed record MacroNode(int Offset, string Name, IReadOnlyList<(string Name, Node? Default)> Parameters, IReadOnlyList<Node> Body) : Node(Offset);

internal sealed record CallBlock(int Offset, Call Call, IReadOnlyList<(string Name, Node? Default)> Parameters, IReadOnlyList<Node> Body) : Node(Offset);

internal sealed record FilterBlock(int Offset, FilterExpr Filter, IReadOnlyList<Node> Body) : Node(Offset);

internal sealed record ScopeBlock(int Offset, IReadOnlyList<Node> Body) : Node(Offset);

internal sealed record ExpressionStatement(int Offset, Node Expression) : Node(Offset);

internal sealed record LoopControl(int Offset, bool IsBreak) : Node(Offset);
