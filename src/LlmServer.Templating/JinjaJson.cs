using System.Globalization;
using System.Text;
using System.Text.Json;

namespace LlmServer.Templating;

/// <summary>JSON in and out of template values: <c>tojson</c> with Python's <c>json.dumps</c> layout, and parsing.</summary>
public static class JinjaJson
{
    /// <summary>Parses JSON text into template values (dicts keep key order; integers stay integers).</summary>
    public static object? Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return FromElement(document.RootElement);
    }

    /// <summary>Converts a JSON element into template values.</summary>
    public static object? FromElement(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var dict = new JinjaDict();
                foreach (var property in element.EnumerateObject())
                {
                    dict.Set(property.Name, FromElement(property.Value));
                }

                return dict;
            case JsonValueKind.Array:
                return new JinjaList(element.EnumerateArray().Select(FromElement));
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.Number:
                var raw = element.GetRawText();
                if (raw.AsSpan().IndexOfAny(".eE") < 0 && long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
                {
                    return integer;
                }

                return element.GetDouble();
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            default:
                return null;
        }
    }

    /// <summary>
    /// Python's <c>json.dumps(value, ensure_ascii, indent, separators, sort_keys)</c>: <c>", "</c> and <c>": "</c>
    /// without indent, <c>","</c> and <c>": "</c> with one.
    /// </summary>
    public static string Serialize(object? value, int? indent = null, string? itemSeparator = null, string? keySeparator = null, bool ensureAscii = false, bool sortKeys = false)
    {
        var builder = new StringBuilder();
        var writer = new Writer(builder, indent, itemSeparator ?? (indent is null ? ", " : ","), keySeparator ?? ": ", ensureAscii, sortKeys);
        writer.Write(value, 0);
        return builder.ToString();
    }

    private sealed class Writer(StringBuilder builder, int? indent, string itemSeparator, string keySeparator, bool ensureAscii, bool sortKeys)
    {
        public void Write(object? value, int depth)
        {
            switch (value)
            {
                case null or Undefined:
                    builder.Append("null");
                    break;
                case bool b:
                    builder.Append(b ? "true" : "false");
                    break;
                case long l:
                    builder.Append(l.ToString(CultureInfo.InvariantCulture));
                    break;
                case double d:
                    builder.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : PyOps.FormatFloat(d));
                    break;
                case string s:
                    WriteString(s);
                    break;
                case JinjaList list:
                    WriteSequence('[', ']', list.Count, depth, i => Write(list[i], depth + 1));
                    break;
                case JinjaDict dict:
                    {
                        var entries = dict.Entries.ToList();
                        if (sortKeys)
                        {
                            entries.Sort((a, b) => PyOps.Compare(a.Key, b.Key));
                        }

                        WriteSequence('{', '}', entries.Count, depth, i =>
                        {
                            WriteString(entries[i].Key as string ?? PyOps.Str(entries[i].Key is bool kb ? (kb ? "true" : "false") : entries[i].Key));
                            builder.Append(keySeparator);
                            Write(entries[i].Value, depth + 1);
                        });
                        break;
                    }

                default:
                    throw new JinjaError($"Object of type {PyOps.TypeName(value)} is not JSON serializable");
            }
        }

        private void WriteSequence(char open, char close, int count, int depth, Action<int> writeItem)
        {
            builder.Append(open);
            if (count == 0)
            {
                builder.Append(close);
                return;
            }

            for (var i = 0; i < count; i++)
            {
                if (i > 0)
                {
                    builder.Append(itemSeparator);
                }

                if (indent is int step)
                {
                    builder.Append('\n').Append(' ', step * (depth + 1));
                }

                writeItem(i);
            }

            if (indent is int width)
            {
                builder.Append('\n').Append(' ', width * depth);
            }

            builder.Append(close);
        }

        private void WriteString(string s)
        {
            builder.Append('"');
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"':
                        builder.Append("\\\"");
                        break;
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
                    case '\b':
                        builder.Append("\\b");
                        break;
                    case '\f':
                        builder.Append("\\f");
                        break;
                    default:
                        if (c < ' ' || (ensureAscii && c > '~'))
                        {
                            builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        }
                        else
                        {
                            builder.Append(c);
                        }

                        break;
                }
            }

            builder.Append('"');
        }
    }
}
