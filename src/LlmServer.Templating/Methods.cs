using System.Globalization;
using System.Text;

namespace LlmServer.Templating;

/// <summary>Python's str, list and dict methods that templates call: <c>s.strip()</c>, <c>d.get(k)</c>, <c>l.append(x)</c>.</summary>
internal static class Methods
{
    private static readonly HashSet<string> StringMethods =
    [
        "startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip", "upper", "lower", "replace", "find",
        "rfind", "index", "format", "title", "capitalize", "count", "join", "splitlines", "isdigit", "isalpha",
        "isalnum", "isspace", "islower", "isupper", "removeprefix", "removesuffix", "swapcase", "zfill", "center",
        "ljust", "rjust", "partition", "rpartition",
    ];

    private static readonly HashSet<string> ListMethods = ["append", "pop", "extend", "insert", "index", "count", "reverse", "sort", "remove", "copy", "clear"];

    private static readonly HashSet<string> DictMethods = ["get", "items", "keys", "values", "update", "pop", "copy", "setdefault", "clear"];

    public static bool IsMethod(object? target, string name) => target switch
    {
        string => StringMethods.Contains(name),
        JinjaList => ListMethods.Contains(name),
        JinjaNamespace => false,
        JinjaDict => DictMethods.Contains(name),
        _ => false,
    };

    public static JinjaFunction Bind(object? target, string name) =>
        new(name, args => TryCall(target, name, args, out var result) ? result : throw new JinjaError($"no method '{name}'"));

    public static bool TryCall(object? target, string name, CallArguments args, out object? result)
    {
        result = null;
        if (!IsMethod(target, name))
        {
            return false;
        }

        result = target switch
        {
            string s => CallString(s, name, args),
            JinjaList list => CallList(list, name, args),
            JinjaDict dict => CallDict(dict, name, args),
            _ => null,
        };
        return true;
    }

    private static object? CallString(string s, string name, CallArguments args)
    {
        string Arg(int i) => args.Positional.Count > i && args.Positional[i] is string a ? a : string.Empty;
        string? Chars(int i) => args.Positional.Count > i && args.Positional[i] is string c ? c : null;
        switch (name)
        {
            case "startswith":
                return AnyAffix(args.Positional[0], p => s.StartsWith(p, StringComparison.Ordinal));
            case "endswith":
                return AnyAffix(args.Positional[0], p => s.EndsWith(p, StringComparison.Ordinal));
            case "split":
                return Split(s, Separator(args), MaxSplit(args), fromRight: false);
            case "rsplit":
                return Split(s, Separator(args), MaxSplit(args), fromRight: true);
            case "strip":
                return Strip(s, Chars(0), true, true);
            case "lstrip":
                return Strip(s, Chars(0), true, false);
            case "rstrip":
                return Strip(s, Chars(0), false, true);
            case "upper":
                return s.ToUpperInvariant();
            case "lower":
                return s.ToLowerInvariant();
            case "replace":
                {
                    var count = args.Positional.Count > 2 ? (long)args.Positional[2]! : -1;
                    return Replace(s, Arg(0), Arg(1), count);
                }

            case "find":
                return (long)s.IndexOf(Arg(0), StringComparison.Ordinal);
            case "rfind":
                return (long)s.LastIndexOf(Arg(0), StringComparison.Ordinal);
            case "index":
                {
                    var at = s.IndexOf(Arg(0), StringComparison.Ordinal);
                    return at >= 0 ? (long)at : throw new JinjaError("substring not found");
                }

            case "count":
                {
                    var sub = Arg(0);
                    if (sub.Length == 0)
                    {
                        return PyOps.Length(s) + 1;
                    }

                    long n = 0;
                    for (var i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal))
                    {
                        n++;
                    }

                    return n;
                }

            case "format":
                return Format(s, args);
            case "title":
                return Title(s);
            case "capitalize":
                return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            case "join":
                return string.Join(s, PyOps.Iterate(args.Positional[0]).Select(PyOps.Str));
            case "splitlines":
                return new JinjaList(s.Split('\n').Select(l => (object?)l.TrimEnd('\r')).Take(s.EndsWith('\n') ? s.Split('\n').Length - 1 : int.MaxValue));
            case "isdigit":
                return s.Length > 0 && s.All(char.IsDigit);
            case "isalpha":
                return s.Length > 0 && s.All(char.IsLetter);
            case "isalnum":
                return s.Length > 0 && s.All(char.IsLetterOrDigit);
            case "isspace":
                return s.Length > 0 && s.All(char.IsWhiteSpace);
            case "islower":
                return s.Any(char.IsLetter) && !s.Any(char.IsUpper);
            case "isupper":
                return s.Any(char.IsLetter) && !s.Any(char.IsLower);
            case "removeprefix":
                return s.StartsWith(Arg(0), StringComparison.Ordinal) ? s[Arg(0).Length..] : s;
            case "removesuffix":
                return Arg(0).Length > 0 && s.EndsWith(Arg(0), StringComparison.Ordinal) ? s[..^Arg(0).Length] : s;
            case "swapcase":
                return string.Concat(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)));
            case "zfill":
                {
                    var width = (int)(long)args.Positional[0]!;
                    var sign = s.Length > 0 && s[0] is '+' or '-' ? s[..1] : string.Empty;
                    return sign + s[sign.Length..].PadLeft(width - sign.Length, '0');
                }

            case "center":
                {
                    var width = (int)(long)args.Positional[0]!;
                    var fill = Chars(1) is { Length: 1 } f ? f[0] : ' ';
                    var total = Math.Max(0, width - s.Length);
                    var left = (total / 2) + (total & width & 1);
                    return new string(fill, left) + s + new string(fill, total - left);
                }

            case "ljust":
                return s.PadRight((int)(long)args.Positional[0]!, Chars(1) is { Length: 1 } lf ? lf[0] : ' ');
            case "rjust":
                return s.PadLeft((int)(long)args.Positional[0]!, Chars(1) is { Length: 1 } rf ? rf[0] : ' ');
            case "partition":
                {
                    var at = s.IndexOf(Arg(0), StringComparison.Ordinal);
                    return at < 0 ? JinjaList.Tuple(s, string.Empty, string.Empty) : JinjaList.Tuple(s[..at], Arg(0), s[(at + Arg(0).Length)..]);
                }

            case "rpartition":
                {
                    var at = s.LastIndexOf(Arg(0), StringComparison.Ordinal);
                    return at < 0 ? JinjaList.Tuple(string.Empty, string.Empty, s) : JinjaList.Tuple(s[..at], Arg(0), s[(at + Arg(0).Length)..]);
                }

            default:
                throw new JinjaError($"'str' object has no attribute '{name}'");
        }
    }

    private static bool AnyAffix(object? affix, Func<string, bool> test) => affix switch
    {
        string p => test(p),
        JinjaList list => list.Any(p => p is string ps && test(ps)),
        _ => throw new JinjaError("startswith/endswith first arg must be str or a tuple of str"),
    };

    private static string? Separator(CallArguments args) => args.Get(0, "sep") is string sep ? sep : null;

    private static long MaxSplit(CallArguments args) => args.Get(1, "maxsplit") is long n ? n : -1;

    /// <summary>Python's <c>str.split</c>/<c>rsplit</c>: no separator splits on runs of whitespace and drops empties.</summary>
    public static JinjaList Split(string s, string? separator, long maxSplit, bool fromRight)
    {
        if (separator is { Length: 0 })
        {
            throw new JinjaError("empty separator");
        }

        List<string> parts;
        if (separator is null)
        {
            parts = [];
            var words = s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (maxSplit < 0 || words.Length <= maxSplit + 1)
            {
                parts.AddRange(words);
            }
            else if (!fromRight)
            {
                var rest = s.TrimStart();
                for (var i = 0; i < maxSplit; i++)
                {
                    var end = rest.IndexOfAny([' ', '\t', '\n', '\r', '\f', '\v']);
                    parts.Add(rest[..end]);
                    rest = rest[end..].TrimStart();
                }

                parts.Add(rest);
            }
            else
            {
                var rest = s.TrimEnd();
                var tail = new List<string>();
                for (var i = 0; i < maxSplit; i++)
                {
                    var start = rest.LastIndexOfAny([' ', '\t', '\n', '\r', '\f', '\v']);
                    tail.Insert(0, rest[(start + 1)..]);
                    rest = rest[..(start + 1)].TrimEnd();
                }

                parts.Add(rest);
                parts.AddRange(tail);
            }
        }
        else if (maxSplit < 0)
        {
            parts = [.. s.Split(separator)];
        }
        else if (!fromRight)
        {
            parts = [.. s.Split(separator, (int)Math.Min(int.MaxValue, maxSplit + 1))];
        }
        else
        {
            parts = [];
            var rest = s;
            for (var i = 0; i < maxSplit; i++)
            {
                var at = rest.LastIndexOf(separator, StringComparison.Ordinal);
                if (at < 0)
                {
                    break;
                }

                parts.Insert(0, rest[(at + separator.Length)..]);
                rest = rest[..at];
            }

            parts.Insert(0, rest);
        }

        return new JinjaList(parts);
    }

    /// <summary>Python's strip family: whitespace by default, else any of the given characters.</summary>
    public static string Strip(string s, string? chars, bool left, bool right)
    {
        bool Strippable(char c) => chars is null ? char.IsWhiteSpace(c) : chars.Contains(c, StringComparison.Ordinal);
        var start = 0;
        var end = s.Length;
        while (left && start < end && Strippable(s[start]))
        {
            start++;
        }

        while (right && end > start && Strippable(s[end - 1]))
        {
            end--;
        }

        return s[start..end];
    }

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0)
        {
            return old.Length == 0 ? Interleave(s, replacement) : s.Replace(old, replacement, StringComparison.Ordinal);
        }

        var builder = new StringBuilder();
        var position = 0;
        for (long i = 0; i < count; i++)
        {
            var at = s.IndexOf(old, position, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            builder.Append(s, position, at - position).Append(replacement);
            position = at + old.Length;
        }

        return builder.Append(s, position, s.Length - position).ToString();
    }

    private static string Interleave(string s, string separator)
    {
        var builder = new StringBuilder(separator);
        foreach (var c in s)
        {
            builder.Append(c).Append(separator);
        }

        return builder.ToString();
    }

    public static string Title(string s)
    {
        var builder = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            builder.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }

        return builder.ToString();
    }

    // str.format with {}, {0} and {name} fields; format specs are not supported.
    private static string Format(string format, CallArguments args)
    {
        var builder = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c == '{' && i + 1 < format.Length && format[i + 1] == '{')
            {
                builder.Append('{');
                i++;
                continue;
            }

            if (c == '}' && i + 1 < format.Length && format[i + 1] == '}')
            {
                builder.Append('}');
                i++;
                continue;
            }

            if (c != '{')
            {
                builder.Append(c);
                continue;
            }

            var close = format.IndexOf('}', i);
            if (close < 0)
            {
                throw new JinjaError("Single '{' encountered in format string");
            }

            var field = format[(i + 1)..close];
            var colon = field.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                field = field[..colon];
            }

            object? value;
            if (field.Length == 0)
            {
                value = auto < args.Positional.Count ? args.Positional[auto++] : throw new JinjaError("Replacement index out of range");
            }
            else if (int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var position))
            {
                value = position < args.Positional.Count ? args.Positional[position] : throw new JinjaError("Replacement index out of range");
            }
            else
            {
                value = args.Keywords.FirstOrDefault(k => k.Key == field).Value ?? Undefined.Named(field);
            }

            builder.Append(PyOps.Str(value));
            i = close;
        }

        return builder.ToString();
    }

    private static object? CallList(JinjaList list, string name, CallArguments args)
    {
        switch (name)
        {
            case "append":
                list.Add(args.Positional[0]);
                return null;
            case "extend":
                list.AddRange(PyOps.Iterate(args.Positional[0]));
                return null;
            case "insert":
                {
                    var at = (int)(long)args.Positional[0]!;
                    list.Insert(Math.Clamp(at < 0 ? at + list.Count : at, 0, list.Count), args.Positional[1]);
                    return null;
                }

            case "pop":
                {
                    if (list.Count == 0)
                    {
                        throw new JinjaError("pop from empty list");
                    }

                    var at = args.Positional.Count > 0 ? (int)(long)args.Positional[0]! : -1;
                    if (at < 0)
                    {
                        at += list.Count;
                    }

                    var item = list[at];
                    list.RemoveAt(at);
                    return item;
                }

            case "index":
                {
                    var at = list.FindIndex(x => PyOps.AreEqual(x, args.Positional[0]));
                    return at >= 0 ? (long)at : throw new JinjaError("value is not in list");
                }

            case "count":
                return (long)list.Count(x => PyOps.AreEqual(x, args.Positional[0]));
            case "reverse":
                list.Reverse();
                return null;
            case "sort":
                {
                    var sorted = Filters.Sort(list, args.Get(-1, "reverse") is true, caseSensitive: true, attribute: null);
                    list.Clear();
                    list.AddRange(sorted);
                    return null;
                }

            case "remove":
                {
                    var at = list.FindIndex(x => PyOps.AreEqual(x, args.Positional[0]));
                    if (at < 0)
                    {
                        throw new JinjaError("list.remove(x): x not in list");
                    }

                    list.RemoveAt(at);
                    return null;
                }

            case "copy":
                return new JinjaList(list);
            case "clear":
                list.Clear();
                return null;
            default:
                throw new JinjaError($"'list' object has no attribute '{name}'");
        }
    }

    private static object? CallDict(JinjaDict dict, string name, CallArguments args)
    {
        switch (name)
        {
            case "get":
                {
                    var key = args.Positional[0];
                    return key is not null and not Undefined && dict.TryGet(key, out var value) ? value : args.Get(1, "default");
                }

            case "items":
                return new JinjaList(dict.Entries.Select(e => (object?)JinjaList.Tuple(e.Key, e.Value)));
            case "keys":
                return new JinjaList(dict.Keys);
            case "values":
                return new JinjaList(dict.Entries.Select(e => e.Value));
            case "update":
                if (args.Positional.Count > 0 && args.Positional[0] is JinjaDict other)
                {
                    foreach (var entry in other.Entries)
                    {
                        dict.Set(entry.Key, entry.Value);
                    }
                }

                foreach (var (key, value) in args.Keywords)
                {
                    dict.Set(key, value);
                }

                return null;
            case "pop":
                {
                    var key = args.Positional[0]!;
                    if (dict.TryGet(key, out var value))
                    {
                        dict.Remove(key);
                        return value;
                    }

                    return args.Positional.Count > 1 ? args.Positional[1] : throw new JinjaError($"KeyError: {PyOps.Repr(key)}");
                }

            case "copy":
                return dict.Copy();
            case "setdefault":
                {
                    var key = args.Positional[0]!;
                    if (!dict.TryGet(key, out var value))
                    {
                        value = args.Positional.Count > 1 ? args.Positional[1] : null;
                        dict.Set(key, value);
                    }

                    return value;
                }

            case "clear":
                foreach (var key in dict.Keys.ToList())
                {
                    dict.Remove(key);
                }

                return null;
            default:
                throw new JinjaError($"'dict' object has no attribute '{name}'");
        }
    }
}
