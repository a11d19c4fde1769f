namespace LlmServer.Templating;

/// <summary>Jinja's tests (<c>x is defined</c>, <c>x is string</c>, ...), used by <c>is</c> and by select/reject.</summary>
internal static class Tests
{
    public static bool Apply(Interpreter interpreter, TestExpr test, Scope scope)
    {
        var value = interpreter.Evaluate(test.Target, scope);
        var args = test.Args.Select(a => interpreter.Evaluate(a, scope)).ToList();
        return ApplyByName(interpreter, test.Name, value, args);
    }

    public static bool ApplyByName(Interpreter interpreter, string name, object? value, IReadOnlyList<object?> args)
    {
        object? Arg(int i) => i < args.Count ? args[i] : Undefined.Instance;
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "number" => value is long or double,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is JinjaDict and not JinjaNamespace,
            "iterable" => value is string or JinjaList or JinjaDict,
            "sequence" => value is string or JinjaList or JinjaDict,
            "callable" => value is JinjaFunction or JinjaMacro,
            "equalto" or "eq" or "==" or "sameas" => PyOps.AreEqual(value, Arg(0)),
            "ne" or "!=" => !PyOps.AreEqual(value, Arg(0)),
            "lt" or "lessthan" or "<" => PyOps.Compare(value, Arg(0)) < 0,
            "le" or "<=" => PyOps.Compare(value, Arg(0)) <= 0,
            "gt" or "greaterthan" or ">" => PyOps.Compare(value, Arg(0)) > 0,
            "ge" or ">=" => PyOps.Compare(value, Arg(0)) >= 0,
            "odd" => value is long o && Math.Abs(o % 2) == 1,
            "even" => value is long e && e % 2 == 0,
            "divisibleby" => value is long n && Arg(0) is long d && d != 0 && n % d == 0,
            "in" => PyOps.Contains(Arg(0), value),
            "lower" => value is string lower && lower == lower.ToLowerInvariant(),
            "upper" => value is string upper && upper == upper.ToUpperInvariant(),
            "escaped" => false,
            "filter" => true,
            "test" => true,
            _ => throw new JinjaError($"No test named '{name}'"),
        };
    }
}
