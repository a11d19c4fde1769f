using System.Globalization;
using System.Text;

namespace LlmServer.Templating;

/// <summary>Python's semantics for template values: truthiness, str/repr, equality, ordering, arithmetic.</summary>
internal static class PyOps
{
    public static bool IsUndefined(object? value) => value is Undefined;

    public static bool IsNumber(object? value) => value is long or double;

    public static bool Truthy(object? value) => value switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        JinjaList list => list.Count > 0,
        JinjaDict dict => dict is JinjaNamespace || dict.Count > 0,
        _ => true,
    };

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        JinjaList { IsTuple: true } => "tuple",
        JinjaList => "list",
        JinjaNamespace => "Namespace",
        JinjaDict => "dict",
        _ => "function",
    };

    /// <summary>Python's <c>str(value)</c>, as <c>{{ value }}</c> prints it.</summary>
    public static string Str(object? value) => value switch
    {
        string s => s,
        Undefined => string.Empty,
        _ => Repr(value),
    };

    /// <summary>Python's <c>repr(value)</c>: <c>'text'</c>, <c>True</c>, <c>None</c>, <c>1.0</c>, <c>{'a': [1, 2]}</c>.</summary>
    public static string Repr(object? value)
    {
        var builder = new StringBuilder();
        AppendRepr(builder, value);
        return builder.ToString();
    }

    private static void AppendRepr(StringBuilder builder, object? value)
    {
        switch (value)
        {
            case null:
                builder.Append("None");
                break;
            case Undefined:
                break;
            case bool b:
                builder.Append(b ? "True" : "False");
                break;
            case long l:
                builder.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                builder.Append(FormatFloat(d));
                break;
            case string s:
                AppendStringRepr(builder, s);
                break;
            case JinjaList list:
                builder.Append(list.IsTuple ? '(' : '[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0)
                    {
                        builder.Append(", ");
                    }

                    AppendRepr(builder, list[i]);
                }

                if (list.IsTuple && list.Count == 1)
                {
                    builder.Append(',');
                }

                builder.Append(list.IsTuple ? ')' : ']');
                break;
            case JinjaNamespace ns:
                builder.Append("<Namespace ");
                AppendDict(builder, ns);
                builder.Append('>');
                break;
            case JinjaDict dict:
                AppendDict(builder, dict);
                break;
            case JinjaFunction function:
                builder.Append("<function ").Append(function.Name).Append('>');
                break;
            default:
                builder.Append(Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }
    }

    private static void AppendDict(StringBuilder builder, JinjaDict dict)
    {
        builder.Append('{');
        var first = true;
        foreach (var entry in dict.Entries)
        {
            if (!first)
            {
                builder.Append(", ");
            }

            first = false;
            AppendRepr(builder, entry.Key);
            builder.Append(": ");
            AppendRepr(builder, entry.Value);
        }

        builder.Append('}');
    }

    private static void AppendStringRepr(StringBuilder builder, string s)
    {
        var quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        builder.Append(quote);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\':
                    builder.Append("\\\\");
                    break;
                case '\n':
                    builder.Append("\\n");
                    break;
                case '\r':
                    builder.Append("\\r");
                    break;
                case '\t':
                    builder.Append("\\t");
                    break;
                default:
                    if (c == quote)
                    {
                        builder.Append('\\').Append(c);
                    }
                    else if (c < ' ' || c == '\x7f')
                    {
                        builder.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        builder.Append(c);
                    }

                    break;
            }
        }

        builder.Append(quote);
    }

    /// <summary>Python's float repr: the shortest round-trip digits, <c>1.0</c>, <c>1e-05</c>, <c>1e+16</c>.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        if (d == 0)
        {
            return double.IsNegative(d) ? "-0.0" : "0.0";
        }

        var shortest = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);

        // Split the shortest form into its significant digits and a decimal exponent.
        string mantissa = shortest;
        var exponent = 0;
        var e = shortest.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            mantissa = shortest[..e];
            exponent = int.Parse(shortest[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        }

        var dot = mantissa.IndexOf('.', StringComparison.Ordinal);
        var integerPart = dot >= 0 ? mantissa[..dot] : mantissa;
        var fractionPart = dot >= 0 ? mantissa[(dot + 1)..] : string.Empty;
        var digits = (integerPart + fractionPart).TrimStart('0');
        var leadingZeros = (integerPart + fractionPart).Length - digits.Length;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        // Scientific exponent of the first significant digit.
        var sciExponent = integerPart.Length - 1 - leadingZeros + exponent;
        var sign = d < 0 ? "-" : string.Empty;
        if (sciExponent < -4 || sciExponent >= 16)
        {
            var m = digits.Length > 1 ? digits[0] + "." + digits[1..] : digits;
            var expSign = sciExponent < 0 ? "-" : "+";
            return sign + m + "e" + expSign + Math.Abs(sciExponent).ToString("00", CultureInfo.InvariantCulture);
        }

        string result;
        if (sciExponent < 0)
        {
            result = "0." + new string('0', -sciExponent - 1) + digits;
        }
        else if (digits.Length <= sciExponent + 1)
        {
            result = digits + new string('0', sciExponent + 1 - digits.Length) + ".0";
        }
        else
        {
            result = digits[..(sciExponent + 1)] + "." + digits[(sciExponent + 1)..];
        }

        return sign + result;
    }

    public static bool AreEqual(object? a, object? b)
    {
        if (a is bool ba)
        {
            a = ba ? 1L : 0L;
        }

        if (b is bool bb)
        {
            b = bb ? 1L : 0L;
        }

        switch (a)
        {
            case null:
                return b is null;
            case Undefined:
                return b is Undefined;
            case long la when b is long lb:
                return la == lb;
            case long or double when b is long or double:
                return ToDouble(a) == ToDouble(b);
            case string sa:
                return b is string sb && string.Equals(sa, sb, StringComparison.Ordinal);
            case JinjaList la2 when b is JinjaList lb2:
                if (la2.Count != lb2.Count)
                {
                    return false;
                }

                for (var i = 0; i < la2.Count; i++)
                {
                    if (!AreEqual(la2[i], lb2[i]))
                    {
                        return false;
                    }
                }

                return true;
            case JinjaDict da when b is JinjaDict db:
                if (da.Count != db.Count)
                {
                    return false;
                }

                foreach (var entry in da.Entries)
                {
                    if (!db.TryGet(entry.Key, out var other) || !AreEqual(entry.Value, other))
                    {
                        return false;
                    }
                }

                return true;
            default:
                return ReferenceEquals(a, b);
        }
    }

    /// <summary>Python's ordering: numbers with numbers, strings with strings, lists element-wise.</summary>
    public static int Compare(object? a, object? b)
    {
        if (a is bool ba)
        {
            a = ba ? 1L : 0L;
        }

        if (b is bool bb)
        {
            b = bb ? 1L : 0L;
        }

        switch (a)
        {
            case long la when b is long lb:
                return la.CompareTo(lb);
            case long or double when b is long or double:
                return ToDouble(a).CompareTo(ToDouble(b));
            case string sa when b is string sb:
                return string.CompareOrdinal(sa, sb);
            case JinjaList la2 when b is JinjaList lb2:
                for (var i = 0; i < Math.Min(la2.Count, lb2.Count); i++)
                {
                    var c = Compare(la2[i], lb2[i]);
                    if (c != 0)
                    {
                        return c;
                    }
                }

                return la2.Count.CompareTo(lb2.Count);
            default:
                throw new JinjaError($"'<' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
        }
    }

    public static double ToDouble(object? value) => value switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new JinjaError($"expected a number, got '{TypeName(value)}'"),
    };

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub
            ? s.Contains(sub, StringComparison.Ordinal)
            : throw new JinjaError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        JinjaList list => list.Exists(x => AreEqual(x, item)),
        JinjaDict dict => item is not null and not Undefined && dict.ContainsKey(item),
        Undefined or null => false,
        _ => throw new JinjaError($"argument of type '{TypeName(container)}' is not iterable"),
    };

    /// <summary>What <c>for x in value</c> walks: list items, dict keys, string characters.</summary>
    public static IEnumerable<object?> Iterate(object? value) => value switch
    {
        JinjaList list => list.ToArray(),
        JinjaDict dict => dict.Keys.Cast<object?>().ToArray(),
        string s => Characters(s),
        Undefined or null => [],
        _ => throw new JinjaError($"'{TypeName(value)}' object is not iterable"),
    };

    public static JinjaList ToList(object? value) => new(Iterate(value));

    public static IEnumerable<object?> Characters(string s)
    {
        var chars = new List<object?>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                chars.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                chars.Add(s[i].ToString());
            }
        }

        return chars;
    }

    /// <summary>Python's <c>len()</c>; a string counts code points.</summary>
    public static long Length(object? value) => value switch
    {
        string s => CodePointLength(s),
        JinjaList list => list.Count,
        JinjaDict dict => dict.Count,
        Undefined => 0,
        _ => throw new JinjaError($"object of type '{TypeName(value)}' has no len()"),
    };

    private static long CodePointLength(string s)
    {
        long count = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }

            count++;
        }

        return count;
    }

    public static object? Add(object? a, object? b) => (a, b) switch
    {
        (string sa, string sb) => sa + sb,
        // Lenient undefined (as llama.cpp renders): it adds to a string as an empty string.
        (string sa, Undefined) => sa,
        (Undefined, string sb) => sb,
        (JinjaList la, JinjaList lb) => new JinjaList(la.Concat(lb)) { IsTuple = la.IsTuple },
        (long la, long lb) => la + lb,
        _ when IsNumeric(a) && IsNumeric(b) => Numeric(a, b, (x, y) => x + y, (x, y) => x + y),
        _ => throw Unsupported("+", a, b),
    };

    public static object? Subtract(object? a, object? b) =>
        IsNumeric(a) && IsNumeric(b) ? Numeric(a, b, (x, y) => x - y, (x, y) => x - y) : throw Unsupported("-", a, b);

    public static object? Multiply(object? a, object? b) => (a, b) switch
    {
        (string s, long n) => Repeat(s, n),
        (long n, string s) => Repeat(s, n),
        (JinjaList l, long n) => new JinjaList(Enumerable.Repeat(l, (int)Math.Max(0, n)).SelectMany(x => x)),
        _ when IsNumeric(a) && IsNumeric(b) => Numeric(a, b, (x, y) => x * y, (x, y) => x * y),
        _ => throw Unsupported("*", a, b),
    };

    public static object? Divide(object? a, object? b)
    {
        if (!IsNumeric(a) || !IsNumeric(b))
        {
            throw Unsupported("/", a, b);
        }

        var divisor = ToDouble(b);
        return divisor == 0 ? throw new JinjaError("division by zero") : ToDouble(a) / divisor;
    }

    public static object? FloorDivide(object? a, object? b)
    {
        if (!IsNumeric(a) || !IsNumeric(b))
        {
            throw Unsupported("//", a, b);
        }

        if (AsLong(a) is long la && AsLong(b) is long lb)
        {
            return lb == 0 ? throw new JinjaError("integer division or modulo by zero") : FloorDiv(la, lb);
        }

        var divisor = ToDouble(b);
        return divisor == 0 ? throw new JinjaError("float floor division by zero") : Math.Floor(ToDouble(a) / divisor);
    }

    public static object? Modulo(object? a, object? b)
    {
        if (a is string format)
        {
            return PercentFormat(format, b);
        }

        if (!IsNumeric(a) || !IsNumeric(b))
        {
            throw Unsupported("%", a, b);
        }

        if (AsLong(a) is long la && AsLong(b) is long lb)
        {
            return lb == 0 ? throw new JinjaError("integer division or modulo by zero") : la - (FloorDiv(la, lb) * lb);
        }

        var x = ToDouble(a);
        var y = ToDouble(b);
        if (y == 0)
        {
            throw new JinjaError("float modulo");
        }

        var r = x % y;
        return r != 0 && (r < 0) != (y < 0) ? r + y : r;
    }

    public static object? Power(object? a, object? b)
    {
        if (AsLong(a) is long la && AsLong(b) is long lb && lb >= 0)
        {
            long result = 1;
            for (var i = 0L; i < lb; i++)
            {
                result = checked(result * la);
            }

            return result;
        }

        return IsNumeric(a) && IsNumeric(b) ? Math.Pow(ToDouble(a), ToDouble(b)) : throw Unsupported("**", a, b);
    }

    public static object? Negate(object? a) => a switch
    {
        long l => (object)(-l),
        double d => -d,
        bool b => b ? -1L : 0L,
        _ => throw new JinjaError($"bad operand type for unary -: '{TypeName(a)}'"),
    };

    private static long FloorDiv(long a, long b)
    {
        var q = a / b;
        return (a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q;
    }

    private static long? AsLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => null,
    };

    private static bool IsNumeric(object? value) => value is long or double or bool;

    private static object Numeric(object? a, object? b, Func<long, long, long> onLongs, Func<double, double, double> onDoubles) =>
        AsLong(a) is long la && AsLong(b) is long lb ? (object)onLongs(la, lb) : onDoubles(ToDouble(a), ToDouble(b));

    private static string Repeat(string s, long n) => n <= 0 ? string.Empty : new StringBuilder().Insert(0, s, (int)n).ToString();

    private static JinjaError Unsupported(string op, object? a, object? b) =>
        new($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");

    /// <summary>Python's <c>format % values</c> for the conversions templates use: %s, %r, %d, %i, %f, %%.</summary>
    public static string PercentFormat(string format, object? values)
    {
        var args = values is JinjaList { IsTuple: true } tuple ? tuple : new JinjaList { values };
        var builder = new StringBuilder();
        var next = 0;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                builder.Append(format[i]);
                continue;
            }

            var spec = format[++i];
            if (spec == '%')
            {
                builder.Append('%');
                continue;
            }

            if (next >= args.Count)
            {
                throw new JinjaError("not enough arguments for format string");
            }

            var arg = args[next++];
            builder.Append(spec switch
            {
                's' => Str(arg),
                'r' => Repr(arg),
                'd' or 'i' => ((long)Math.Truncate(ToDouble(arg))).ToString(CultureInfo.InvariantCulture),
                'f' => ToDouble(arg).ToString("F6", CultureInfo.InvariantCulture),
                _ => throw new JinjaError($"unsupported format character '{spec}'"),
            });
        }

        return builder.ToString();
    }
}
