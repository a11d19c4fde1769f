using System.Text;

namespace LlmServer.Templating;

/// <summary>Variables visible at a point of the template; loops and macros open a child scope.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope._variables.TryGetValue(name, out value))
            {
                return true;
            }
        }

        value = null;
        return false;
    }

    public void Set(string name, object? value) => _variables[name] = value;
}

/// <summary>A macro bound to the scope it was defined in.</summary>
internal sealed class JinjaMacro(MacroNode node, Scope closure)
{
    public MacroNode Node { get; } = node;

    public Scope Closure { get; } = closure;
}

/// <summary>The <c>loop</c> variable of a for loop; calling it recurses in a recursive loop.</summary>
internal sealed class LoopObject(Func<object?, string>? recurse) : JinjaDict
{
    public Func<object?, string>? Recurse { get; } = recurse;
}

/// <summary>Walks the parsed template and writes its output.</summary>
internal sealed partial class Interpreter
{
    private readonly string _source;
    private readonly RenderEnvironment _environment;

    public Interpreter(string source, RenderEnvironment environment)
    {
        _source = source;
        _environment = environment;
    }

    private sealed class BreakSignal : Exception;

    private sealed class ContinueSignal : Exception;

    public void Execute(IReadOnlyList<Node> body, Scope scope, StringBuilder output)
    {
        foreach (var node in body)
        {
            ExecuteNode(node, scope, output);
        }
    }

    private string Capture(IReadOnlyList<Node> body, Scope scope)
    {
        var builder = new StringBuilder();
        Execute(body, scope, builder);
        return builder.ToString();
    }

    private void ExecuteNode(Node node, Scope scope, StringBuilder output)
    {
        switch (node)
        {
            case TextNode text:
                output.Append(text.Text);
                break;
            case Output o:
                output.Append(PyOps.Str(Evaluate(o.Expression, scope)));
                break;
            case IfNode ifNode:
                foreach (var (test, branch) in ifNode.Branches)
                {
                    if (PyOps.Truthy(Evaluate(test, scope)))
                    {
                        Execute(branch, scope, output);
                        return;
                    }
                }

                if (ifNode.Else is not null)
                {
                    Execute(ifNode.Else, scope, output);
                }

                break;
            case ForNode forNode:
                ExecuteFor(forNode, Evaluate(forNode.Iterable, scope), scope, output);
                break;
            case SetNode set:
                Assign(set.Target, Evaluate(set.Value, scope), scope);
                break;
            case SetBlock setBlock:
                {
                    object? value = Capture(setBlock.Body, scope);
                    if (setBlock.Filter is not null)
                    {
                        value = ApplyFilterChain(setBlock.Filter, value, scope);
                    }

                    Assign(setBlock.Target, value, scope);
                    break;
                }

            case MacroNode macro:
                scope.Set(macro.Name, new JinjaMacro(macro, scope));
                break;
            case CallBlock callBlock:
                {
                    var caller = new JinjaMacro(new MacroNode(callBlock.Offset, "caller", callBlock.Parameters, callBlock.Body), scope);
                    output.Append(PyOps.Str(EvaluateCall(callBlock.Call, scope, caller)));
                    break;
                }

            case FilterBlock filterBlock:
                output.Append(PyOps.Str(ApplyFilterChain(filterBlock.Filter, Capture(filterBlock.Body, scope), scope)));
                break;
            case ScopeBlock scopeBlock:
                Execute(scopeBlock.Body, scope, output);
                break;
            case ExpressionStatement statement:
                Evaluate(statement.Expression, scope);
                break;
            case LoopControl control:
                throw control.IsBreak ? new BreakSignal() : new ContinueSignal();
            default:
                throw Fail(node, $"cannot execute {node.GetType().Name}");
        }
    }

    private void ExecuteFor(ForNode node, object? iterable, Scope scope, StringBuilder output)
    {
        IEnumerable<object?> source;
        try
        {
            source = iterable is JinjaDict dict and not JinjaNamespace ? dict.Keys.Cast<object?>().ToArray() : PyOps.Iterate(iterable);
        }
        catch (JinjaError e)
        {
            throw Fail(node, e.Message);
        }

        var items = new List<object?>();
        foreach (var item in source)
        {
            if (node.Filter is null)
            {
                items.Add(item);
                continue;
            }

            var filterScope = new Scope(scope);
            Unpack(node, item, filterScope);
            if (PyOps.Truthy(Evaluate(node.Filter, filterScope)))
            {
                items.Add(item);
            }
        }

        if (items.Count == 0)
        {
            if (node.Else is not null)
            {
                Execute(node.Else, scope, output);
            }

            return;
        }

        Func<object?, string>? recurse = node.Recursive
            ? inner =>
            {
                var builder = new StringBuilder();
                ExecuteFor(node, inner, scope, builder);
                return builder.ToString();
            }
        : null;
        var loopScope = new Scope(scope);
        for (var i = 0; i < items.Count; i++)
        {
            var loop = new LoopObject(recurse);
            loop.Set("index", (long)(i + 1));
            loop.Set("index0", (long)i);
            loop.Set("revindex", (long)(items.Count - i));
            loop.Set("revindex0", (long)(items.Count - i - 1));
            loop.Set("first", i == 0);
            loop.Set("last", i == items.Count - 1);
            loop.Set("length", (long)items.Count);
            loop.Set("depth", 1L);
            loop.Set("depth0", 0L);
            loop.Set("previtem", i > 0 ? items[i - 1] : Undefined.Named("previtem"));
            loop.Set("nextitem", i + 1 < items.Count ? items[i + 1] : Undefined.Named("nextitem"));
            var index = i;
            loop.Set("cycle", new JinjaFunction("cycle", args =>
                args.Positional.Count == 0 ? Undefined.Instance : args.Positional[index % args.Positional.Count]));
            loop.Set("changed", new JinjaFunction("changed", args => true));
            var iterationScope = new Scope(loopScope);
            iterationScope.Set("loop", loop);
            Unpack(node, items[i], iterationScope);
            try
            {
                Execute(node.Body, iterationScope, output);
            }
            catch (ContinueSignal)
            {
            }
            catch (BreakSignal)
            {
                break;
            }
        }
    }

    private void Unpack(ForNode node, object? item, Scope scope)
    {
        if (node.Targets.Count == 1)
        {
            scope.Set(node.Targets[0], item);
            return;
        }

        var values = item is JinjaList list ? list : PyOps.ToList(item);
        if (values.Count != node.Targets.Count)
        {
            throw Fail(node, $"cannot unpack {values.Count} values into {node.Targets.Count} names");
        }

        for (var i = 0; i < node.Targets.Count; i++)
        {
            scope.Set(node.Targets[i], values[i]);
        }
    }

    private void Assign(Node target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameRef name:
                scope.Set(name.Name, value);
                break;
            case Attribute { Target: NameRef owner } attribute:
                {
                    scope.TryGet(owner.Name, out var obj);
                    if (obj is not JinjaNamespace ns)
                    {
                        throw Fail(target, $"cannot assign attribute on non-namespace object '{owner.Name}'");
                    }

                    ns.Set(attribute.Name, value);
                    break;
                }

            case ListExpr names:
                {
                    var values = PyOps.ToList(value);
                    if (values.Count != names.Items.Count)
                    {
                        throw Fail(target, $"cannot unpack {values.Count} values into {names.Items.Count} names");
                    }

                    for (var i = 0; i < values.Count; i++)
                    {
                        Assign(names.Items[i], values[i], scope);
                    }

                    break;
                }

            default:
                throw Fail(target, "cannot assign to this expression");
        }
    }

    public object? Evaluate(Node node, Scope scope)
    {
        try
        {
            return EvaluateCore(node, scope);
        }
        catch (JinjaError e)
        {
            throw e.Raised ? Raise(node, e.Message) : Fail(node, e.Message);
        }
    }

    private object? EvaluateCore(Node node, Scope scope)
    {
        switch (node)
        {
            case Literal literal:
                return literal.Value;
            case NameRef name:
                return scope.TryGet(name.Name, out var value) ? value : Undefined.Named(name.Name);
            case ListExpr list:
                return new JinjaList(list.Items.Select(item => Evaluate(item, scope))) { IsTuple = list.IsTuple };
            case DictExpr dictExpr:
                {
                    var dict = new JinjaDict();
                    foreach (var (key, itemValue) in dictExpr.Items)
                    {
                        var k = Evaluate(key, scope) ?? throw new JinjaError("None cannot be a dict key here");
                        dict.Set(k, Evaluate(itemValue, scope));
                    }

                    return dict;
                }

            case Attribute attribute:
                return Members.GetAttribute(Evaluate(attribute.Target, scope), attribute.Name);
            case Index index:
                return Members.GetItem(Evaluate(index.Target, scope), Evaluate(index.Key, scope));
            case Slice slice:
                return Members.GetSlice(
                    Evaluate(slice.Target, scope),
                    slice.Start is null ? null : Evaluate(slice.Start, scope),
                    slice.Stop is null ? null : Evaluate(slice.Stop, scope),
                    slice.Step is null ? null : Evaluate(slice.Step, scope));
            case Call call:
                return EvaluateCall(call, scope, null);
            case FilterExpr filter:
                return ApplyFilterChain(filter, null, scope);
            case TestExpr test:
                {
                    var result = Tests.Apply(this, test, scope);
                    return test.Negated ? !result : result;
                }

            case Unary unary:
                {
                    var operand = Evaluate(unary.Operand, scope);
                    return unary.Op == "not" ? !PyOps.Truthy(operand) : PyOps.Negate(operand);
                }

            case Binary binary:
                return EvaluateBinary(binary, scope);
            case Compare compare:
                {
                    var left = Evaluate(compare.First, scope);
                    foreach (var (op, operandNode) in compare.Rest)
                    {
                        var right = Evaluate(operandNode, scope);
                        var ok = op switch
                        {
                            "==" => PyOps.AreEqual(left, right),
                            "!=" => !PyOps.AreEqual(left, right),
                            "<" => PyOps.Compare(left, right) < 0,
                            ">" => PyOps.Compare(left, right) > 0,
                            "<=" => PyOps.Compare(left, right) <= 0,
                            ">=" => PyOps.Compare(left, right) >= 0,
                            "in" => PyOps.Contains(right, left),
                            _ => !PyOps.Contains(right, left),
                        };
                        if (!ok)
                        {
                            return false;
                        }

                        left = right;
                    }

                    return true;
                }

            case Conditional conditional:
                return PyOps.Truthy(Evaluate(conditional.Test, scope))
                    ? Evaluate(conditional.Then, scope)
                    : conditional.Else is null ? Undefined.Instance : Evaluate(conditional.Else, scope);
            default:
                throw new JinjaError($"cannot evaluate {node.GetType().Name}");
        }
    }

    private object? EvaluateBinary(Binary binary, Scope scope)
    {
        var left = Evaluate(binary.Left, scope);
        switch (binary.Op)
        {
            case "and":
                return PyOps.Truthy(left) ? Evaluate(binary.Right, scope) : left;
            case "or":
                return PyOps.Truthy(left) ? left : Evaluate(binary.Right, scope);
        }

        var right = Evaluate(binary.Right, scope);
        return binary.Op switch
        {
            "~" => PyOps.Str(left) + PyOps.Str(right),
            "+" => PyOps.Add(left, right),
            "-" => PyOps.Subtract(left, right),
            "*" => PyOps.Multiply(left, right),
            "/" => PyOps.Divide(left, right),
            "//" => PyOps.FloorDivide(left, right),
            "%" => PyOps.Modulo(left, right),
            "**" => PyOps.Power(left, right),
            _ => throw new JinjaError($"unknown operator '{binary.Op}'"),
        };
    }

    private object? EvaluateCall(Call call, Scope scope, JinjaMacro? caller)
    {
        var args = EvaluateArguments(call.Args, call.Kwargs, scope);
        if (call.Target is Attribute attribute)
        {
            var owner = Evaluate(attribute.Target, scope);
            if (Methods.TryCall(owner, attribute.Name, args, out var result))
            {
                return result;
            }

            return Invoke(Members.GetAttribute(owner, attribute.Name), args, caller, call);
        }

        return Invoke(Evaluate(call.Target, scope), args, caller, call);
    }

    public CallArguments EvaluateArguments(IReadOnlyList<Node> args, IReadOnlyList<(string Name, Node Value)> kwargs, Scope scope) =>
        new(
            args.Select(a => Evaluate(a, scope)).ToList(),
            kwargs.Select(k => new KeyValuePair<string, object?>(k.Name, Evaluate(k.Value, scope))).ToList());

    public object? Invoke(object? target, CallArguments args, JinjaMacro? caller, Node site)
    {
        switch (target)
        {
            case JinjaFunction function:
                return function.Invoke(args);
            case JinjaMacro macro:
                return InvokeMacro(macro, args, caller);
            case LoopObject { Recurse: not null } loop:
                return loop.Recurse(args.Positional.Count > 0 ? args.Positional[0] : Undefined.Instance);
            case Undefined undefined:
                throw new JinjaError($"'{undefined.Name ?? "undefined"}' is undefined and cannot be called");
            default:
                throw new JinjaError($"'{PyOps.TypeName(target)}' object is not callable");
        }
    }

    private string InvokeMacro(JinjaMacro macro, CallArguments args, JinjaMacro? caller)
    {
        var scope = new Scope(macro.Closure);
        var parameters = macro.Node.Parameters;
        var extra = new JinjaList();
        for (var i = 0; i < args.Positional.Count; i++)
        {
            if (i < parameters.Count)
            {
                scope.Set(parameters[i].Name, args.Positional[i]);
            }
            else
            {
                extra.Add(args.Positional[i]);
            }
        }

        var kwargs = new JinjaDict();
        foreach (var (name, value) in args.Keywords)
        {
            if (parameters.Any(p => p.Name == name))
            {
                scope.Set(name, value);
            }
            else
            {
                kwargs.Set(name, value);
            }
        }

        for (var i = 0; i < parameters.Count; i++)
        {
            var (name, fallback) = parameters[i];
            if (i < args.Positional.Count || args.Keywords.Any(k => k.Key == name))
            {
                continue;
            }

            scope.Set(name, fallback is null ? Undefined.Named(name) : Evaluate(fallback, scope));
        }

        scope.Set("varargs", extra);
        scope.Set("kwargs", kwargs);
        if (caller is not null)
        {
            scope.Set("caller", caller);
        }

        return Capture(macro.Node.Body, scope);
    }

    private object? ApplyFilterChain(FilterExpr filter, object? input, Scope scope)
    {
        var value = filter.Target switch
        {
            null => input,
            FilterExpr inner => ApplyFilterChain(inner, input, scope),
            var target => Evaluate(target, scope),
        };
        var args = EvaluateArguments(filter.Args, filter.Kwargs, scope);
        try
        {
            return Filters.Apply(this, filter.Name, value, args);
        }
        catch (JinjaError e)
        {
            throw e.Raised ? Raise(filter, e.Message) : Fail(filter, e.Message);
        }
    }

    public RenderEnvironment Environment => _environment;

    private TemplateException Fail(Node node, string reason)
    {
        var (line, column) = Lexer.Position(_source, node.Offset);
        return new TemplateException(reason, line, column);
    }

    private TemplateRaisedException Raise(Node node, string reason)
    {
        var (line, column) = Lexer.Position(_source, node.Offset);
        return new TemplateRaisedException(reason, line, column);
    }
}
