namespace LlmServer.Templating;

/// <summary>Attribute, item and slice access with Jinja's rules: <c>a.b</c> and <c>a['b']</c> both reach dict keys.</summary>
internal static class Members
{
    public static object? GetAttribute(object? target, string name)
    {
        switch (target)
        {
            case JinjaNamespace ns:
                return ns[name];
            case LoopObject loop:
                return loop[name];
            case JinjaDict dict:
                if (dict.TryGet(name, out var value))
                {
                    return value;
                }

                return Methods.IsMethod(target, name) ? Methods.Bind(target, name) : Undefined.Named(name);
            case string or JinjaList when Methods.IsMethod(target, name):
                return Methods.Bind(target, name);
            default:
                return Undefined.Named(name);
        }
    }

    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case JinjaDict dict:
                return key is not null and not Undefined && dict.TryGet(key, out var value) ? value : Undefined.Instance;
            case JinjaList list when key is long or bool:
                {
                    var index = key is bool b ? (b ? 1 : 0) : (long)key;
                    if (index < 0)
                    {
                        index += list.Count;
                    }

                    return index >= 0 && index < list.Count ? list[(int)index] : Undefined.Instance;
                }

            case string s when key is long index:
                {
                    var chars = PyOps.Characters(s).ToList();
                    if (index < 0)
                    {
                        index += chars.Count;
                    }

                    return index >= 0 && index < chars.Count ? chars[(int)index] : Undefined.Instance;
                }

            case JinjaList or string when key is string name:
                return GetAttribute(target, name);
            default:
                return Undefined.Instance;
        }
    }

    public static object? GetSlice(object? target, object? start, object? stop, object? step)
    {
        var items = target switch
        {
            JinjaList list => list,
            string s => PyOps.Characters(s).ToList(),
            Undefined or null => [],
            _ => throw new JinjaError($"'{PyOps.TypeName(target)}' object is not subscriptable"),
        };
        var indices = SliceIndices(items.Count, start, stop, step);
        var picked = indices.Select(i => items[i]);
        return target is string
            ? string.Concat(picked.Cast<string>())
            : new JinjaList(picked) { IsTuple = target is JinjaList { IsTuple: true } };
    }

    // Python's slice.indices(): clamps, negative indices from the end, negative steps walk backwards.
    private static List<int> SliceIndices(int length, object? start, object? stop, object? step)
    {
        var s = step is null or Undefined ? 1L : ToIndex(step);
        if (s == 0)
        {
            throw new JinjaError("slice step cannot be zero");
        }

        long lo;
        long hi;
        if (s > 0)
        {
            lo = start is null or Undefined ? 0 : Clamp(ToIndex(start), length, 0, length);
            hi = stop is null or Undefined ? length : Clamp(ToIndex(stop), length, 0, length);
        }
        else
        {
            lo = start is null or Undefined ? length - 1 : Clamp(ToIndex(start), length, -1, length - 1);
            hi = stop is null or Undefined ? -1 : Clamp(ToIndex(stop), length, -1, length - 1);
        }

        var result = new List<int>();
        for (var i = lo; s > 0 ? i < hi : i > hi; i += s)
        {
            result.Add((int)i);
        }

        return result;
    }

    private static long Clamp(long index, int length, long min, long max)
    {
        if (index < 0)
        {
            index += length;
        }

        return Math.Clamp(index, min, max);
    }

    private static long ToIndex(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new JinjaError("slice indices must be integers or None"),
    };
}
