using System.Globalization;
using System.Text;
using System.Text.Json;

namespace LlmServer.OpenAi;

/// <summary>
/// Turns <c>response_format</c> into a GBNF grammar (root rule <c>root</c>) so the output parses as JSON.
/// Supports the JSON-schema subset structured outputs use: objects with properties and required, strings
/// (enum, const, minLength/maxLength), numbers, integers, booleans, null, arrays with items (minItems/maxItems),
/// anyOf/oneOf, type arrays, <c>nullable</c>, and local <c>$ref</c>s to <c>$defs</c>/<c>definitions</c>.
/// Objects admit exactly the declared properties, required ones always present.
/// </summary>
internal sealed class JsonSchemaGrammar
{
    /// <summary>Where a schema error points, in OpenAI's parameter naming.</summary>
    public const string SchemaParam = "response_format.json_schema.schema";

    /// <summary>Any JSON value; rules are prefixed so schema rules never clash with them.</summary>
    private const string GenericRules = """
        json-value ::= json-object | json-array | json-string | json-number | "true" | "false" | "null"
        json-object ::= "{" ws ( json-string ws ":" ws json-value ws ( "," ws json-string ws ":" ws json-value ws )* )? "}"
        json-array ::= "[" ws ( json-value ws ( "," ws json-value ws )* )? "]"
        json-string ::= "\"" json-char* "\""
        json-char ::= [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
        json-number ::= json-integer ( "." [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,3} )?
        json-integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
        """;

    /// <summary>Bounded so a small model cannot pad forever between tokens.</summary>
    private const string WhitespaceRule = """ws ::= | " " | "\n" [ \t]{0,20}""";

    private const int MaxDepth = 32;

    private readonly JsonElement _root;
    private readonly List<string> _rules = [];
    private readonly HashSet<string> _ruleNames = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _refRules = new(StringComparer.Ordinal);
    private bool _usesGenericRules;

    private JsonSchemaGrammar(JsonElement root) => _root = root;

    /// <summary>A grammar for any JSON object (<c>response_format: json_object</c>).</summary>
    public static string ForAnyObject() => $"root ::= json-object\n{GenericRules}\n{WhitespaceRule}\n";

    /// <summary>A grammar for values of <paramref name="schema"/>; throws a 400 naming the schema when unsupported.</summary>
    public static string ForSchema(JsonElement schema)
    {
        var grammar = new JsonSchemaGrammar(schema);
        var root = grammar.Visit(schema, "root", 0);
        var text = new StringBuilder();
        text.Append("root ::= ").Append(root).Append('\n');
        foreach (var rule in grammar._rules)
        {
            text.Append(rule).Append('\n');
        }

        if (grammar._usesGenericRules)
        {
            text.Append(GenericRules).Append('\n');
        }

        return text.Append(WhitespaceRule).Append('\n').ToString();
    }

    /// <summary>Returns a GBNF expression for one value of <paramref name="schema"/>.</summary>
    private string Visit(JsonElement schema, string name, int depth)
    {
        if (depth > MaxDepth)
        {
            throw Unsupported($"the schema nests deeper than {MaxDepth} levels.");
        }

        if (schema.ValueKind == JsonValueKind.True)
        {
            return Generic("json-value");
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw Unsupported("a schema must be an object.");
        }

        var expression = VisitNonNull(schema, name, depth);
        return schema.TryGetProperty("nullable", out var nullable) && nullable.ValueKind == JsonValueKind.True
            ? $"( {expression} | \"null\" )"
            : expression;
    }

    private string VisitNonNull(JsonElement schema, string name, int depth)
    {
        if (schema.TryGetProperty("$ref", out var reference))
        {
            return VisitReference(reference.GetString() ?? string.Empty, depth);
        }

        if (schema.TryGetProperty("const", out var constant))
        {
            return Literal(CompactJson(constant));
        }

        if (schema.TryGetProperty("enum", out var values))
        {
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
            {
                throw Unsupported("'enum' must be a non-empty array.");
            }

            return Alternatives(values.EnumerateArray().Select(v => Literal(CompactJson(v))));
        }

        foreach (var keyword in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(keyword, out var options))
            {
                if (options.ValueKind != JsonValueKind.Array || options.GetArrayLength() == 0)
                {
                    throw Unsupported($"'{keyword}' must be a non-empty array.");
                }

                return Alternatives(options.EnumerateArray().Select((option, i) => Visit(option, $"{name}-{i}", depth + 1)));
            }
        }

        if (schema.TryGetProperty("allOf", out _))
        {
            throw Unsupported("'allOf' is not supported; use anyOf or a single object schema.");
        }

        if (!schema.TryGetProperty("type", out var type))
        {
            return schema.TryGetProperty("properties", out _) ? VisitObject(schema, name, depth)
                : schema.TryGetProperty("items", out _) ? VisitArray(schema, name, depth)
                : Generic("json-value");
        }

        return type.ValueKind switch
        {
            JsonValueKind.String => VisitType(type.GetString()!, schema, name, depth),
            JsonValueKind.Array when type.GetArrayLength() > 0 => Alternatives(type.EnumerateArray().Select(t =>
                t.ValueKind == JsonValueKind.String ? VisitType(t.GetString()!, schema, name, depth) : throw Unsupported("'type' entries must be strings."))),
            _ => throw Unsupported("'type' must be a string or a non-empty array of strings."),
        };
    }

    private string VisitType(string type, JsonElement schema, string name, int depth) => type switch
    {
        "object" => VisitObject(schema, name, depth),
        "array" => VisitArray(schema, name, depth),
        "string" => VisitString(schema),
        "number" => Generic("json-number"),
        "integer" => Generic("json-integer"),
        "boolean" => "( \"true\" | \"false\" )",
        "null" => "\"null\"",
        _ => throw Unsupported($"type '{type}' is not supported."),
    };

    private string VisitReference(string reference, int depth)
    {
        if (_refRules.TryGetValue(reference, out var existing))
        {
            return existing;
        }

        const string Defs = "#/$defs/";
        const string Definitions = "#/definitions/";
        var (container, key) = reference.StartsWith(Defs, StringComparison.Ordinal) ? ("$defs", reference[Defs.Length..])
            : reference.StartsWith(Definitions, StringComparison.Ordinal) ? ("definitions", reference[Definitions.Length..])
            : throw Unsupported($"'$ref' '{reference}' is not supported; only local #/$defs/ and #/definitions/ references are.");
        if (!_root.TryGetProperty(container, out var defs) || defs.ValueKind != JsonValueKind.Object || !defs.TryGetProperty(key, out var target))
        {
            throw Unsupported($"'$ref' '{reference}' points at nothing.");
        }

        // Named before its body is visited, so recursive schemas refer to the rule instead of looping.
        var ruleName = UniqueName("ref-" + key);
        _refRules[reference] = ruleName;
        var slot = _rules.Count;
        _rules.Add(string.Empty);
        _rules[slot] = $"{ruleName} ::= {Visit(target, ruleName, depth + 1)}";
        return ruleName;
    }

    private string VisitObject(JsonElement schema, string name, int depth)
    {
        if (!schema.TryGetProperty("properties", out var properties) || properties.ValueKind != JsonValueKind.Object)
        {
            return Generic("json-object");
        }

        var required = new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("required", out var requiredList) && requiredList.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in requiredList.EnumerateArray())
            {
                if (item.ValueKind == JsonValueKind.String)
                {
                    required.Add(item.GetString()!);
                }
            }
        }

        var requiredMembers = new List<string>();
        var optionalMembers = new List<string>();
        foreach (var property in properties.EnumerateObject())
        {
            var memberName = $"{name}-{property.Name}";
            var member = AddRule(memberName, $"{Literal(CompactJson(property.Name))} ws \":\" ws {Visit(property.Value, memberName, depth + 1)}");
            (required.Contains(property.Name) ? requiredMembers : optionalMembers).Add(member);
        }

        var body = new StringBuilder("\"{\" ws ");
        if (requiredMembers.Count > 0)
        {
            body.AppendJoin(" ws \",\" ws ", requiredMembers).Append(" ws");
            if (optionalMembers.Count > 0)
            {
                body.Append(" ( \",\" ws ").Append(OptionalMembers(name, optionalMembers)).Append(" ws )?");
            }
        }
        else if (optionalMembers.Count > 0)
        {
            body.Append("( ").Append(OptionalMembers(name, optionalMembers)).Append(" ws )?");
        }

        return body.Append(" \"}\"").ToString();
    }

    /// <summary>
    /// A rule for any non-empty, in-order subset of <paramref name="members"/>, comma-separated:
    /// rest(i) ::= member(i) ( "," rest(i+1) )? | rest(i+1).
    /// </summary>
    private string OptionalMembers(string name, List<string> members)
    {
        var next = AddRule($"{name}-rest", members[^1]);
        for (var i = members.Count - 2; i >= 0; i--)
        {
            next = AddRule($"{name}-rest", $"{members[i]} ( ws \",\" ws {next} )? | {next}");
        }

        return next;
    }

    private string VisitArray(JsonElement schema, string name, int depth)
    {
        var item = schema.TryGetProperty("items", out var items) ? AddRule($"{name}-item", Visit(items, $"{name}-item", depth + 1)) : Generic("json-value");
        var min = ReadCount(schema, "minItems") ?? 0;
        var max = ReadCount(schema, "maxItems");
        if (max < min)
        {
            throw Unsupported("'maxItems' is less than 'minItems'.");
        }

        if (max == 0)
        {
            return "\"[\" ws \"]\"";
        }

        var more = Repeat($"ws \",\" ws {item}", Math.Max(0, min - 1), max - 1);
        var list = $"{item} {more}";
        return min == 0 ? $"\"[\" ws ( {list} ws )? \"]\"" : $"\"[\" ws {list} ws \"]\"";
    }

    private string VisitString(JsonElement schema)
    {
        var min = ReadCount(schema, "minLength") ?? 0;
        var max = ReadCount(schema, "maxLength");
        if (max < min)
        {
            throw Unsupported("'maxLength' is less than 'minLength'.");
        }

        _usesGenericRules = true;
        return $"\"\\\"\" {Repeat("json-char", min, max)} \"\\\"\"";
    }

    private static string Repeat(string item, int min, int? max) => (min, max) switch
    {
        (0, null) => $"( {item} )*",
        (_, null) => $"( {item} ){{{min},}}",
        (0, 0) => string.Empty,
        _ => $"( {item} ){{{min},{max}}}",
    };

    private static int? ReadCount(JsonElement schema, string keyword)
    {
        if (!schema.TryGetProperty(keyword, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var count) && count >= 0
            ? count
            : throw Unsupported($"'{keyword}' must be a non-negative integer.");
    }

    private string Generic(string rule)
    {
        _usesGenericRules = true;
        return rule;
    }

    private string AddRule(string name, string body)
    {
        var ruleName = UniqueName(name);
        _rules.Add($"{ruleName} ::= {body}");
        return ruleName;
    }

    private string UniqueName(string name)
    {
        var clean = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            clean.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        }

        var baseName = clean.ToString();
        var unique = baseName;
        for (var i = 1; unique is "root" or "ws" || unique.StartsWith("json-", StringComparison.Ordinal) || !_ruleNames.Add(unique); i++)
        {
            unique = $"{baseName}-{i.ToString(CultureInfo.InvariantCulture)}";
        }

        return unique;
    }

    private static string Alternatives(IEnumerable<string> options) => $"( {string.Join(" | ", options)} )";

    /// <summary>The value as compact JSON text, which is exactly what the model must write.</summary>
    private static string CompactJson(JsonElement value)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = OpenAiJson.Encoder }))
        {
            value.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string CompactJson(string propertyName)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = OpenAiJson.Encoder }))
        {
            writer.WriteStringValue(propertyName);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>A GBNF string literal matching <paramref name="text"/> exactly.</summary>
    private static string Literal(string text)
    {
        var literal = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            _ = c switch
            {
                '"' => literal.Append("\\\""),
                '\\' => literal.Append("\\\\"),
                '\n' => literal.Append("\\n"),
                '\r' => literal.Append("\\r"),
                '\t' => literal.Append("\\t"),
                < ' ' => literal.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:X2}"),
                _ => literal.Append(c),
            };
        }

        return literal.Append('"').ToString();
    }

    private static OpenAiException Unsupported(string detail) =>
        OpenAiException.InvalidField(SchemaParam, $"Invalid schema for response_format: {detail}");
}
