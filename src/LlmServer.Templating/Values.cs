namespace LlmServer.Templating;

/// <summary>
/// Jinja's lenient undefined value: prints as nothing, is falsy, iterates as empty, and yields itself for any
/// attribute, as Hugging Face and llama.cpp render chat templates.
/// </summary>
public sealed class Undefined
{
    private Undefined(string? name) => Name = name;

    /// <summary>The undefined value with no name.</summary>
    public static Undefined Instance { get; } = new(null);

    /// <summary>The name that was looked up, for messages.</summary>
    public string? Name { get; }

    internal static Undefined Named(string name) => new(name);

    /// <inheritdoc />
    public override string ToString() => string.Empty;
}

/// <summary>A Python list (or tuple, which prints with parentheses).</summary>
public sealed class JinjaList : List<object?>
{
    /// <summary>An empty list.</summary>
    public JinjaList()
    {
    }

    /// <summary>A list holding <paramref name="items"/>.</summary>
    public JinjaList(IEnumerable<object?> items)
        : base(items)
    {
    }

    /// <summary>Whether this is a tuple (prints as <c>(a, b)</c>).</summary>
    public bool IsTuple { get; init; }

    internal static JinjaList Tuple(params object?[] items) => new(items) { IsTuple = true };
}

/// <summary>A Python dict: insertion-ordered, keys compared with Python's equality.</summary>
public class JinjaDict
{
    private readonly Dictionary<object, int> _index = new(KeyComparer.Instance);
    private readonly List<KeyValuePair<object, object?>> _entries = [];

    /// <summary>The number of entries.</summary>
    public int Count => _index.Count;

    /// <summary>The keys in insertion order.</summary>
    public IEnumerable<object> Keys
    {
        get
        {
            foreach (var entry in _entries)
            {
                if (!ReferenceEquals(entry.Key, Removed))
                {
                    yield return entry.Key;
                }
            }
        }
    }

    /// <summary>The entries in insertion order.</summary>
    public IEnumerable<KeyValuePair<object, object?>> Entries
    {
        get
        {
            foreach (var entry in _entries)
            {
                if (!ReferenceEquals(entry.Key, Removed))
                {
                    yield return entry;
                }
            }
        }
    }

    private static readonly object Removed = new();

    /// <summary>Gets or sets an entry; a missing key reads as <see cref="Undefined"/>.</summary>
    public object? this[object key]
    {
        get => TryGet(key, out var value) ? value : Undefined.Instance;
        set => Set(key, value);
    }

    /// <summary>Sets an entry, keeping the position of an existing key.</summary>
    public void Set(object key, object? value)
    {
        if (_index.TryGetValue(key, out var position))
        {
            _entries[position] = new KeyValuePair<object, object?>(_entries[position].Key, value);
        }
        else
        {
            _index[key] = _entries.Count;
            _entries.Add(new KeyValuePair<object, object?>(key, value));
        }
    }

    /// <summary>Reads an entry.</summary>
    public bool TryGet(object key, out object? value)
    {
        if (_index.TryGetValue(key, out var position))
        {
            value = _entries[position].Value;
            return true;
        }

        value = null;
        return false;
    }

    /// <summary>Whether the key is present.</summary>
    public bool ContainsKey(object key) => _index.ContainsKey(key);

    /// <summary>Removes an entry.</summary>
    public bool Remove(object key)
    {
        if (!_index.Remove(key, out var position))
        {
            return false;
        }

        _entries[position] = new KeyValuePair<object, object?>(Removed, null);
        return true;
    }

    /// <summary>A shallow copy.</summary>
    public JinjaDict Copy()
    {
        var copy = new JinjaDict();
        foreach (var entry in Entries)
        {
            copy.Set(entry.Key, entry.Value);
        }

        return copy;
    }

    private sealed class KeyComparer : IEqualityComparer<object>
    {
        public static readonly KeyComparer Instance = new();

        public new bool Equals(object? x, object? y) => PyOps.AreEqual(x, y);

        public int GetHashCode(object obj) => obj switch
        {
            bool b => b ? 1 : 0,
            long l => l.GetHashCode(),
            double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => ((long)d).GetHashCode(),
            string s => StringComparer.Ordinal.GetHashCode(s),
            _ => obj.GetHashCode(),
        };
    }
}

/// <summary>The object <c>namespace()</c> returns: attributes that <c>set ns.x = ...</c> may assign from any scope.</summary>
public sealed class JinjaNamespace : JinjaDict;

/// <summary>A function callable from a template.</summary>
public sealed class JinjaFunction
{
    private readonly Func<CallArguments, object?> _body;

    /// <summary>A named function.</summary>
    public JinjaFunction(string name, Func<CallArguments, object?> body)
    {
        Name = name;
        _body = body;
    }

    /// <summary>The function's name, for messages.</summary>
    public string Name { get; }

    internal object? Invoke(CallArguments arguments) => _body(arguments);
}

/// <summary>The arguments of a call: positional, then keyword.</summary>
public sealed class CallArguments
{
    internal CallArguments(IReadOnlyList<object?> positional, IReadOnlyList<KeyValuePair<string, object?>> keywords)
    {
        Positional = positional;
        Keywords = keywords;
    }

    /// <summary>Positional arguments.</summary>
    public IReadOnlyList<object?> Positional { get; }

    /// <summary>Keyword arguments, in call order.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Keywords { get; }

    internal static CallArguments Empty { get; } = new([], []);

    /// <summary>The argument at <paramref name="position"/> or named <paramref name="name"/>, else <paramref name="fallback"/>.</summary>
    public object? Get(int position, string name, object? fallback = null)
    {
        foreach (var keyword in Keywords)
        {
            if (keyword.Key == name)
            {
                return keyword.Value;
            }
        }

        return position >= 0 && position < Positional.Count ? Positional[position] : fallback;
    }

    /// <summary>Whether the argument was given.</summary>
    public bool Has(int position, string name)
    {
        foreach (var keyword in Keywords)
        {
            if (keyword.Key == name)
            {
                return true;
            }
        }

        return position >= 0 && position < Positional.Count;
    }
}
