using System.Globalization;
using System.Text;

namespace LlmServer.Templating;

/// <summary>Jinja's built-in filters with Python's semantics, plus Hugging Face's <c>tojson</c>.</summary>
internal static class Filters
{
    public static object? Apply(Interpreter interpreter, string name, object? value, CallArguments args)
    {
        switch (name)
        {
            case "tojson":
                {
                    var indent = args.Get(0, "indent") is long n ? (int?)n : null;
                    string? itemSeparator = null;
                    string? keySeparator = null;
                    if (args.Get(-1, "separators") is JinjaList { Count: 2 } separators)
                    {
                        itemSeparator = PyOps.Str(separators[0]);
                        keySeparator = PyOps.Str(separators[1]);
                    }

                    return JinjaJson.Serialize(value, indent, itemSeparator, keySeparator, args.Get(-1, "ensure_ascii") is true, PyOps.Truthy(args.Get(-1, "sort_keys")));
                }

            case "from_json":
                return JinjaJson.Parse(ExpectString(value, name));
            case "trim":
                return Methods.Strip(PyOps.Str(value), args.Get(0, "chars") as string, true, true);
            case "length":
            case "count":
                return PyOps.Length(value);
            case "items":
                return value switch
                {
                    JinjaDict dict => new JinjaList(dict.Entries.Select(e => (object?)JinjaList.Tuple(e.Key, e.Value))),
                    Undefined or null => new JinjaList(),
                    _ => throw new JinjaError($"Can only get item pairs from a mapping, not {PyOps.TypeName(value)}"),
                };
            case "list":
                return PyOps.ToList(value);
            case "string":
                return PyOps.Str(value);
            case "safe":
                return value;
            case "escape":
            case "e":
                return Escape(PyOps.Str(value));
            case "default":
            case "d":
                {
                    var fallback = args.Get(0, "default_value", string.Empty);
                    var boolean = PyOps.Truthy(args.Get(1, "boolean"));
                    return value is Undefined || (boolean && !PyOps.Truthy(value)) ? fallback : value;
                }

            case "upper":
                return PyOps.Str(value).ToUpperInvariant();
            case "lower":
                return PyOps.Str(value).ToLowerInvariant();
            case "capitalize":
                {
                    var s = PyOps.Str(value);
                    return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
                }

            case "title":
                return Methods.Title(PyOps.Str(value));
            case "replace":
                {
                    var count = args.Get(2, "count") is long c ? c : -1;
                    return Methods.Replace(PyOps.Str(value), PyOps.Str(args.Get(0, "old")), PyOps.Str(args.Get(1, "new")), count);
                }

            case "first":
                return value is string fs ? (fs.Length > 0 ? PyOps.Characters(fs).First() : Undefined.Instance) : PyOps.Iterate(value).DefaultIfEmpty(Undefined.Instance).First();
            case "last":
                {
                    var items = PyOps.ToList(value);
                    return items.Count > 0 ? items[^1] : Undefined.Instance;
                }

            case "join":
                {
                    var separator = PyOps.Str(args.Get(0, "d", string.Empty));
                    var attribute = args.Get(1, "attribute") as string;
                    var items = PyOps.Iterate(value);
                    if (attribute is not null)
                    {
                        items = items.Select(item => Attribute(item, attribute));
                    }

                    return string.Join(separator, items.Select(PyOps.Str));
                }

            case "int":
                return ToInt(value, args.Get(0, "default", 0L));
            case "float":
                return ToFloat(value, args.Get(0, "default", 0.0));
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double d => Math.Abs(d),
                    bool b => b ? 1L : 0L,
                    _ => throw new JinjaError($"bad operand type for abs(): '{PyOps.TypeName(value)}'"),
                };
            case "round":
                return Round(value, args);
            case "unique":
                {
                    var result = new JinjaList();
                    var attribute = args.Get(1, "attribute") as string;
                    foreach (var item in PyOps.Iterate(value))
                    {
                        var key = attribute is null ? item : Attribute(item, attribute);
                        if (!result.Any(seen => PyOps.AreEqual(attribute is null ? seen : Attribute(seen, attribute), key)))
                        {
                            result.Add(item);
                        }
                    }

                    return result;
                }

            case "sort":
                return Sort(PyOps.Iterate(value), PyOps.Truthy(args.Get(0, "reverse")), PyOps.Truthy(args.Get(1, "case_sensitive")), args.Get(2, "attribute") as string);
            case "reverse":
                return value is string rs
                    ? string.Concat(PyOps.Characters(rs).Reverse().Cast<string>())
                    : new JinjaList(PyOps.Iterate(value).Reverse());
            case "dictsort":
                {
                    if (value is not JinjaDict dict)
                    {
                        throw new JinjaError("dictsort: a mapping is needed");
                    }

                    var byValue = args.Get(1, "by") is "value";
                    var caseSensitive = PyOps.Truthy(args.Get(0, "case_sensitive"));
                    var entries = dict.Entries.ToList();
                    entries.Sort((a, b) => CompareForSort(byValue ? a.Value : a.Key, byValue ? b.Value : b.Key, caseSensitive));
                    if (PyOps.Truthy(args.Get(2, "reverse")))
                    {
                        entries.Reverse();
                    }

                    return new JinjaList(entries.Select(e => (object?)JinjaList.Tuple(e.Key, e.Value)));
                }

            case "indent":
                return Indent(PyOps.Str(value), args);
            case "wordcount":
                return (long)PyOps.Str(value).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
            case "batch":
                {
                    var size = (int)(long)args.Get(0, "linecount")!;
                    var fill = args.Has(1, "fill_with") ? args.Get(1, "fill_with") : Undefined.Instance;
                    var result = new JinjaList();
                    JinjaList? current = null;
                    foreach (var item in PyOps.Iterate(value))
                    {
                        if (current is null || current.Count == size)
                        {
                            current = [];
                            result.Add(current);
                        }

                        current.Add(item);
                    }

                    if (current is not null && fill is not Undefined)
                    {
                        while (current.Count < size)
                        {
                            current.Add(fill);
                        }
                    }

                    return result;
                }

            case "map":
                return Map(interpreter, value, args);
            case "select":
            case "reject":
                return new JinjaList(PyOps.Iterate(value).Where(item => SelectTest(interpreter, item, args, 0) == (name == "select")));
            case "selectattr":
            case "rejectattr":
                {
                    var attribute = PyOps.Str(args.Positional.Count > 0 ? args.Positional[0] : null);
                    return new JinjaList(PyOps.Iterate(value).Where(item => SelectTest(interpreter, Attribute(item, attribute), args, 1) == (name == "selectattr")));
                }

            case "attr":
                return Members.GetAttribute(value, PyOps.Str(args.Get(0, "name")));
            case "min":
            case "max":
                {
                    var items = PyOps.ToList(value);
                    if (items.Count == 0)
                    {
                        return Undefined.Instance;
                    }

                    var attribute = args.Get(1, "attribute") as string;
                    var best = items[0];
                    foreach (var item in items.Skip(1))
                    {
                        var c = CompareForSort(
                            attribute is null ? item : Attribute(item, attribute),
                            attribute is null ? best : Attribute(best, attribute),
                            PyOps.Truthy(args.Get(0, "case_sensitive")));
                        if ((name == "min" && c < 0) || (name == "max" && c > 0))
                        {
                            best = item;
                        }
                    }

                    return best;
                }

            case "sum":
                {
                    var attribute = args.Get(0, "attribute") as string;
                    object? total = args.Get(1, "start", 0L);
                    foreach (var item in PyOps.Iterate(value))
                    {
                        total = PyOps.Add(total, attribute is null ? item : Attribute(item, attribute));
                    }

                    return total;
                }

            case "center":
                {
                    var s = PyOps.Str(value);
                    var width = args.Get(0, "width") is long w ? (int)w : 80;
                    var total = Math.Max(0, width - s.Length);
                    var left = (total / 2) + (total & width & 1);
                    return new string(' ', left) + s + new string(' ', total - left);
                }

            case "format":
                return PyOps.PercentFormat(PyOps.Str(value), args.Positional.Count == 1 && args.Positional[0] is JinjaDict ? args.Positional[0] : JinjaList.Tuple([.. args.Positional]));
            case "truncate":
                {
                    var s = PyOps.Str(value);
                    var length = args.Get(0, "length") is long l ? (int)l : 255;
                    var end = PyOps.Str(args.Get(2, "end", "..."));
                    return s.Length <= length ? s : s[..Math.Max(0, length - end.Length)] + end;
                }

            case "striptags":
                return System.Text.RegularExpressions.Regex.Replace(PyOps.Str(value), "<[^>]*>", string.Empty);
            case "pprint":
                return PyOps.Repr(value);
            default:
                throw new JinjaError($"No filter named '{name}'");
        }
    }

    private static string ExpectString(object? value, string filter) =>
        value as string ?? throw new JinjaError($"filter '{filter}' needs a string, got '{PyOps.TypeName(value)}'");

    // "a.b" reaches nested attributes, as Jinja's attribute getters do; a digit part indexes a list.
    public static object? Attribute(object? item, string path)
    {
        foreach (var part in path.Split('.'))
        {
            item = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && item is JinjaList
                ? Members.GetItem(item, index)
                : Members.GetItem(item, part);
        }

        return item;
    }

    private static bool SelectTest(Interpreter interpreter, object? item, CallArguments args, int testPosition)
    {
        if (args.Positional.Count <= testPosition)
        {
            return PyOps.Truthy(item);
        }

        var testName = PyOps.Str(args.Positional[testPosition]);
        var testArgs = args.Positional.Skip(testPosition + 1).ToList();
        return Tests.ApplyByName(interpreter, testName, item, testArgs);
    }

    private static JinjaList Map(Interpreter interpreter, object? value, CallArguments args)
    {
        var attribute = args.Get(-1, "attribute") as string;
        if (attribute is not null)
        {
            var fallback = args.Get(-1, "default", Undefined.Instance);
            return new JinjaList(PyOps.Iterate(value).Select(item =>
            {
                var result = Attribute(item, attribute);
                return result is Undefined ? fallback : result;
            }));
        }

        if (args.Positional.Count == 0)
        {
            throw new JinjaError("map requires a filter name or attribute=");
        }

        var filter = PyOps.Str(args.Positional[0]);
        var rest = new CallArguments(args.Positional.Skip(1).ToList(), args.Keywords);
        return new JinjaList(PyOps.Iterate(value).Select(item => Apply(interpreter, filter, item, rest)));
    }

    public static JinjaList Sort(IEnumerable<object?> items, bool reverse, bool caseSensitive, string? attribute)
    {
        var list = items.ToList();
        var keyed = list.Select((item, i) => (Key: attribute is null ? item : Attribute(item, attribute), Item: item, Position: i)).ToList();
        keyed.Sort((a, b) =>
        {
            var c = CompareForSort(a.Key, b.Key, caseSensitive);
            c = reverse ? -c : c;
            return c != 0 ? c : a.Position.CompareTo(b.Position);
        });
        return new JinjaList(keyed.Select(k => k.Item));
    }

    private static int CompareForSort(object? a, object? b, bool caseSensitive)
    {
        if (!caseSensitive && a is string sa && b is string sb)
        {
            return string.CompareOrdinal(sa.ToLowerInvariant(), sb.ToLowerInvariant());
        }

        return PyOps.Compare(a, b);
    }

    private static object? ToInt(object? value, object? fallback)
    {
        switch (value)
        {
            case long:
                return value;
            case bool b:
                return b ? 1L : 0L;
            case double d:
                return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                var trimmed = s.Trim().Replace("_", string.Empty, StringComparison.Ordinal);
                if (long.TryParse(trimmed, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed))
                {
                    return parsed;
                }

                return double.TryParse(trimmed, NumberStyles.Float, CultureInfo.InvariantCulture, out var real) && double.IsFinite(real)
                    ? (long)Math.Truncate(real)
                    : fallback;
            default:
                return fallback;
        }
    }

    private static object? ToFloat(object? value, object? fallback) => value switch
    {
        double => value,
        long l => (object)(double)l,
        bool b => b ? 1.0 : 0.0,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => fallback,
    };

    private static object? Round(object? value, CallArguments args)
    {
        var number = PyOps.ToDouble(value);
        var precision = args.Get(0, "precision") is long p ? (int)p : 0;
        var method = args.Get(1, "method") as string ?? "common";
        var factor = Math.Pow(10, precision);
        var scaled = number * factor;
        var rounded = method switch
        {
            "ceil" => Math.Ceiling(scaled),
            "floor" => Math.Floor(scaled),
            _ => Math.Round(scaled, MidpointRounding.AwayFromZero),
        };
        return rounded / factor;
    }

    private static string Indent(string s, CallArguments args)
    {
        var width = args.Get(0, "width", 4L) switch
        {
            long l => new string(' ', (int)l),
            string text => text,
            _ => "    ",
        };
        var first = PyOps.Truthy(args.Get(1, "first"));
        var blank = PyOps.Truthy(args.Get(2, "blank"));
        var lines = s.Split('\n');
        var builder = new StringBuilder();
        for (var i = 0; i < lines.Length; i++)
        {
            if (i > 0)
            {
                builder.Append('\n');
            }

            var line = lines[i];
            var indentThis = i == 0 ? first : blank || line.Length > 0;
            if (indentThis)
            {
                builder.Append(width);
            }

            builder.Append(line);
        }

        return builder.ToString();
    }

    public static string Escape(string s)
    {
        var builder = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            builder.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&#34;",
                '\'' => "&#39;",
                _ => c.ToString(),
            });
        }

        return builder.ToString();
    }
}
