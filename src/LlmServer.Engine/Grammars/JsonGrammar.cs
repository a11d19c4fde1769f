using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace LlmServer.Engine.Grammars;

/// <summary>
/// GBNF grammars (llama.cpp's format, root rule <c>root</c>) that constrain generation to JSON, for
/// <see cref="Generation.GenerationRequest.Grammar"/>.
/// </summary>
/// <remarks>
/// <see cref="FromSchema"/> enforces <c>type</c> (one or a list), <c>properties</c> (in declared order, no others),
/// <c>required</c>, <c>items</c>, <c>minItems</c>/<c>maxItems</c>, <c>minLength</c>/<c>maxLength</c>, <c>enum</c>,
/// <c>const</c>, <c>anyOf</c>/<c>oneOf</c>, OpenAPI's <c>nullable</c>, local <c>$ref</c>s (recursion included) and
/// <c>minimum</c>/<c>maximum</c> (exclusive too), exactly for integers and numbers whatever the range (an open side
/// stops at 16 integer digits; a bounded number is written without an exponent, with at most 16 fraction digits; a
/// bound <see cref="decimal"/> cannot hold exactly is refused unless dropping it only widens the range).
/// Lengths and item counts go up to <see cref="MaxCount"/>. Strings' <c>format</c> <c>date</c>, <c>time</c>,
/// <c>date-time</c> and <c>uuid</c> (llama.cpp's set) and <c>additionalProperties</c> of objects without declared
/// properties are enforced too. Schemas nest at most 32 levels. Annotations (<c>description</c>, <c>title</c>,
/// <c>default</c>, <c>examples</c>, ...) and keywords outside JSON Schema are ignored; every other assertion
/// (<c>pattern</c>, other formats, <c>multipleOf</c>, <c>uniqueItems</c>, <c>minProperties</c>, <c>allOf</c>,
/// <c>not</c>, <c>if</c>, <c>patternProperties</c>, ...) and malformed schemas are refused with
/// <see cref="ArgumentException"/>, whose
/// message names the place in the schema and the reason (front ends show it to the caller as it is).
/// Output is compact (at most one space between tokens) and numbers have at most 16 integer digits: small models
/// otherwise fill their token budget with whitespace or digits.
/// </remarks>
public static class JsonGrammar
{
    /// <summary>Any JSON object (OpenAI's <c>json_object</c> mode): the root is an object, values are any JSON.</summary>
    public static string AnyObject { get; } = "root ::= object\n" + CommonRules;

    /// <summary>Converts a JSON schema into a grammar whose root accepts exactly the JSON it describes (see remarks).</summary>
    /// <exception cref="ArgumentException">The schema is malformed or uses a keyword the converter cannot honour.</exception>
    public static string FromSchema(JsonElement schema)
    {
        var builder = new Builder();
        return Checked(builder.Render(builder.AddSchema(schema, "schema")));
    }

    /// <summary>
    /// The most a length or item count may be: llama.cpp unrolls <c>{m,n}</c> into rules and refuses counts from
    /// <see cref="GbnfValidator.MaxRepetitions"/> on.
    /// </summary>
    public const int MaxCount = GbnfValidator.MaxRepetitions - 1;

    /// <summary>
    /// <paramref name="grammar"/>, built from schemas, once llama.cpp is known to take it. The schema checks refuse
    /// what would break it; this catches the rest (a grammar too large to unroll) before it reaches admission, where
    /// the error would name the wrong field.
    /// </summary>
    /// <exception cref="ArgumentException">llama.cpp would refuse the grammar.</exception>
    internal static string Checked(string grammar) => GbnfValidator.TryValidate(grammar, "root", out var error)
        ? grammar
        : throw Invalid("The schema makes a grammar too large for llama.cpp (" + error + ").");

    /// <summary>Writes <paramref name="text"/> as a GBNF string literal.</summary>
    internal static string Literal(string text)
    {
        var builder = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
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
                case < ' ' or '\x7F':
                    builder.Append("\\x").Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
                    break;
                default:
                    builder.Append(c);
                    break;
            }
        }

        return builder.Append('"').ToString();
    }

    // The building blocks every grammar shares; schema rules refer to them by name.
    private const string CommonRules =
        """
        value ::= object | array | string | number | boolean | null
        object ::= "{" ws ( member ( "," ws member )* )? "}"
        member ::= string ws ":" ws value ws
        array ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
        string ::= "\"" char* "\""
        char ::= [^"\\\x00-\x1F\x7F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
        number ::= integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
        integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
        boolean ::= "true" | "false"
        null ::= "null"
        ws ::= " "?

        """;

    // Message only: the reason is complete without a parameter name, and front ends pass it on as it is.
    private static ArgumentException Invalid(string reason) => new(reason);

    private static ArgumentException Refused(string keyword, string path) =>
        Invalid($"'{keyword}' at '{path}' is a constraint the JSON grammar cannot enforce, so the schema is refused rather than broken.");

    /// <summary>
    /// Builds one grammar from several schemas and rules of the caller's own (a tool-call syntax around each tool's
    /// arguments): every schema's rules get names unique in the grammar, and the common JSON rules come once.
    /// </summary>
    internal sealed class Builder
    {
        private static readonly JsonSerializerOptions CompactJson = new()
        {
            // The text is matched by the grammar, never embedded in HTML: keep non-ASCII as it is.
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            WriteIndented = false,
        };

        // JSON Schema's assertions that the grammar does not express, with the instance types each constrains (null:
        // any): refused, so an answer never breaks its schema, unless the schema's "type" rules those types out. Its
        // annotations (title, description, default, examples, $comment, ...) and keywords outside its vocabularies
        // assert nothing and are ignored. Three assertions that everyday schemas carry (pydantic's EmailStr, HttpUrl,
        // set[T], Field(pattern=...); zod's .email(), .url(), .regex()) are left to the model, as llama.cpp leaves
        // formats it does not know: refusing them would refuse most tool definitions. They are "pattern",
        // "uniqueItems" and a "format" other than the enforced ones.
        private static readonly string[] Objects = ["object"];
        private static readonly string[] Arrays = ["array"];
        private static readonly Dictionary<string, string[]?> RefusedKeywords = new(StringComparer.Ordinal)
        {
            ["allOf"] = null, ["not"] = null, ["if"] = null, ["then"] = null, ["else"] = null, ["$dynamicRef"] = null, ["$recursiveRef"] = null,
            ["patternProperties"] = Objects, ["propertyNames"] = Objects, ["dependentSchemas"] = Objects, ["dependentRequired"] = Objects,
            ["dependencies"] = Objects, ["minProperties"] = Objects, ["maxProperties"] = Objects, ["unevaluatedProperties"] = Objects,
            ["prefixItems"] = Arrays, ["additionalItems"] = Arrays, ["contains"] = Arrays, ["minContains"] = Arrays, ["maxContains"] = Arrays,
            ["unevaluatedItems"] = Arrays, ["multipleOf"] = ["number", "integer"],
        };

        // RFC 3339 dates, times and date-times (a day exists in every year: February stops at 28) and RFC 9562 UUIDs.
        private static readonly Dictionary<string, string> FormatRules = new(StringComparer.Ordinal)
        {
            ["date"] = """[0-9]{4} "-" ( ( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [12] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) )""",
            ["time"] = """( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )""",
            ["uuid"] = """[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}""",
        };

        private readonly Dictionary<string, string> _formatRules = new(StringComparer.Ordinal);

        private static readonly HashSet<string> CommonRuleNames = ["root", "value", "object", "member", "array", "string", "char", "number", "integer", "boolean", "null", "ws"];

        // Deeper schemas are not what structured output needs, and recursion depth must stay bounded.
        private const int MaxDepth = 32;

        private readonly List<KeyValuePair<string, string>> _rules = [];
        private readonly HashSet<string> _names = new(CommonRuleNames, StringComparer.Ordinal);
        private readonly Dictionary<string, string> _refRules = new(StringComparer.Ordinal);

        // References being resolved since the last object or array opened: reaching one again would make a rule
        // that begins with itself, which never ends (and llama.cpp refuses).
        private HashSet<string> _unguardedRefs = new(StringComparer.Ordinal);

        private JsonElement _root;

        /// <summary>Adds the rules for <paramref name="schema"/>, named after <paramref name="hint"/>; returns its expression.</summary>
        /// <exception cref="ArgumentException">The schema is malformed or uses a keyword the converter cannot honour.</exception>
        public string AddSchema(JsonElement schema, string hint)
        {
            // $refs resolve within the schema being added.
            _root = schema;
            _refRules.Clear();
            _unguardedRefs.Clear();
            return Visit(schema, hint, "#", 0);
        }

        /// <summary>Adds a rule of the caller's own under a unique name made from <paramref name="hint"/>.</summary>
        public string AddRule(string hint, string body)
        {
            var name = ReserveName(hint);
            _rules.Add(new(name, body));
            return name;
        }

        /// <summary>The grammar: <c>root</c> is <paramref name="rootExpression"/>, then every added rule, then the common ones.</summary>
        public string Render(string rootExpression)
        {
            var builder = new StringBuilder();
            builder.Append("root ::= ").Append(rootExpression).Append('\n');
            foreach (var (name, body) in _rules)
            {
                builder.Append(name).Append(" ::= ").Append(body).Append('\n');
            }

            return builder.Append(CommonRules).ToString();
        }

        /// <summary>Returns a GBNF expression for <paramref name="schema"/>, adding the rules it needs.</summary>
        private string Visit(JsonElement schema, string hint, string path, int depth)
        {
            if (depth > MaxDepth)
            {
                throw Invalid($"The schema at '{path}' nests deeper than {MaxDepth} levels.");
            }

            var expression = VisitNonNull(schema, hint, path, depth);
            if (schema.ValueKind != JsonValueKind.Object || !schema.TryGetProperty("nullable", out var nullable)
                || nullable.ValueKind == JsonValueKind.False || expression is "value" or "null")
            {
                return expression;
            }

            return nullable.ValueKind == JsonValueKind.True
                ? AddRule(hint + "-nullable", expression + " | null")
                : throw Invalid($"'nullable' at '{path}' must be true or false.");
        }

        private string VisitNonNull(JsonElement schema, string hint, string path, int depth)
        {
            if (schema.ValueKind == JsonValueKind.True)
            {
                return "value";
            }

            if (schema.ValueKind != JsonValueKind.Object)
            {
                throw Invalid($"The schema at '{path}' must be an object or true, not {schema.ValueKind}.");
            }

            foreach (var (keyword, types) in RefusedKeywords)
            {
                // uniqueItems: false asserts nothing.
                if (schema.TryGetProperty(keyword, out var value) && (keyword != "uniqueItems" || value.ValueKind != JsonValueKind.False)
                    && (types is null || MayBe(schema, types)))
                {
                    throw Refused(keyword, path);
                }
            }

            if (schema.TryGetProperty("$ref", out var reference))
            {
                return VisitReference(reference, path, depth);
            }

            if (schema.TryGetProperty("const", out var constant))
            {
                return JsonLiteral(constant);
            }

            if (schema.TryGetProperty("enum", out var values))
            {
                return VisitEnum(values, hint, path);
            }

            foreach (var keyword in (ReadOnlySpan<string>)["anyOf", "oneOf"])
            {
                if (schema.TryGetProperty(keyword, out var alternatives))
                {
                    return VisitAlternatives(alternatives, hint, path + "/" + keyword, depth);
                }
            }

            if (!schema.TryGetProperty("type", out var type))
            {
                return schema.TryGetProperty("properties", out _) ? VisitType("object", schema, hint, path, depth)
                    : schema.TryGetProperty("items", out _) ? VisitType("array", schema, hint, path, depth)
                    : "value";
            }

            if (type.ValueKind == JsonValueKind.String)
            {
                return VisitType(type.GetString()!, schema, hint, path, depth);
            }

            if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0)
            {
                var alternatives = new List<string>();
                foreach (var item in type.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String)
                    {
                        throw Invalid($"'type' at '{path}' must list type names.");
                    }

                    alternatives.Add(VisitType(item.GetString()!, schema, hint + "-" + item.GetString(), path, depth));
                }

                return AddRule(hint, string.Join(" | ", alternatives.Distinct(StringComparer.Ordinal)));
            }

            throw Invalid($"'type' at '{path}' must be a type name or a non-empty list of them.");
        }

        private string VisitType(string type, JsonElement schema, string hint, string path, int depth) => type switch
        {
            "object" => VisitObject(schema, hint, path, depth),
            "array" => VisitArray(schema, hint, path, depth),
            "string" => VisitString(schema, hint, path),
            "number" => VisitNumber(schema, hint, path),
            "integer" => VisitInteger(schema, hint, path),
            "boolean" => "boolean",
            "null" => "null",
            _ => throw Invalid($"Unknown type '{type}' at '{path}'."),
        };

        private string VisitObject(JsonElement schema, string hint, string path, int depth)
        {
            if (!schema.TryGetProperty("properties", out var properties))
            {
                return VisitMap(schema, hint, path, depth);
            }

            if (properties.ValueKind != JsonValueKind.Object)
            {
                throw Invalid($"'properties' at '{path}' must be an object.");
            }

            var outer = Guard();
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (schema.TryGetProperty("required", out var requiredList))
            {
                if (requiredList.ValueKind != JsonValueKind.Array)
                {
                    throw Invalid($"'required' at '{path}' must be an array of property names.");
                }

                foreach (var name in requiredList.EnumerateArray())
                {
                    required.Add(name.ValueKind == JsonValueKind.String ? name.GetString()! : throw Invalid($"'required' at '{path}' must list strings."));
                }
            }

            var members = new List<(string Expression, bool Required)>();
            foreach (var property in properties.EnumerateObject())
            {
                var valueExpression = Visit(property.Value, hint + "-" + property.Name, path + "/properties/" + property.Name, depth + 1);
                var member = Literal(JsonSerializer.Serialize(property.Name, CompactJson)) + " ws \":\" ws " + valueExpression + " ws";
                members.Add((member, required.Remove(property.Name)));
            }

            if (required.Count > 0)
            {
                throw Invalid($"'required' at '{path}' names properties that are not declared: {string.Join(", ", required)}.");
            }

            _unguardedRefs = outer;

            return AddRule(hint, "\"{\" ws " + MemberSequence(members) + "\"}\"");
        }

        /// <summary>Whether the schema's <c>type</c> (none: any) admits one of <paramref name="types"/>.</summary>
        private static bool MayBe(JsonElement schema, string[] types) => !schema.TryGetProperty("type", out var type)
            || (type.ValueKind == JsonValueKind.String ? types.Contains(type.GetString()!)
                : type.ValueKind != JsonValueKind.Array || type.EnumerateArray().Any(t => t.ValueKind != JsonValueKind.String || types.Contains(t.GetString()!)));

        /// <summary>
        /// An object without declared properties: any members, members whose values follow
        /// <c>additionalProperties</c>, or none when it is false. (With declared properties the grammar writes those
        /// alone, which any <c>additionalProperties</c> allows.)
        /// </summary>
        private string VisitMap(JsonElement schema, string hint, string path, int depth)
        {
            if (schema.TryGetProperty("required", out var required) && (required.ValueKind != JsonValueKind.Array || required.GetArrayLength() > 0))
            {
                throw Invalid($"'required' at '{path}' names properties that are not declared: declare them in 'properties'.");
            }

            if (!schema.TryGetProperty("additionalProperties", out var additional) || additional.ValueKind == JsonValueKind.True)
            {
                return "object";
            }

            if (additional.ValueKind == JsonValueKind.False)
            {
                return AddRule(hint, "\"{\" ws \"}\"");
            }

            if (additional.ValueKind != JsonValueKind.Object)
            {
                throw Invalid($"'additionalProperties' at '{path}' must be true, false or a schema.");
            }

            var outer = Guard();
            var member = "string ws \":\" ws " + Visit(additional, hint + "-value", path + "/additionalProperties", depth + 1) + " ws";
            _unguardedRefs = outer;
            return AddRule(hint, "\"{\" ws ( " + member + " ( \",\" ws " + member + " )* )? \"}\"");
        }

        /// <summary>
        /// Members in declared order, optional ones skippable, commas only between present members: one alternative
        /// per possible first member (any member up to the first required one).
        /// </summary>
        private static string MemberSequence(List<(string Expression, bool Required)> members)
        {
            if (members.Count == 0)
            {
                return string.Empty;
            }

            var alternatives = new List<string>();
            for (var first = 0; first < members.Count; first++)
            {
                var sequence = new StringBuilder(members[first].Expression);
                for (var next = first + 1; next < members.Count; next++)
                {
                    var withComma = "\",\" ws " + members[next].Expression;
                    sequence.Append(' ').Append(members[next].Required ? withComma : "( " + withComma + " )?");
                }

                alternatives.Add(sequence.ToString());
                if (members[first].Required)
                {
                    break;
                }
            }

            var anyRequired = members.Exists(m => m.Required);
            return "( " + string.Join(" | ", alternatives) + (anyRequired ? " ) " : " )? ");
        }

        private string VisitArray(JsonElement schema, string hint, string path, int depth)
        {
            var outer = Guard();
            var item = schema.TryGetProperty("items", out var items) ? Visit(items, hint + "-item", path + "/items", depth + 1) : "value";
            _unguardedRefs = outer;
            var min = ReadCount(schema, "minItems", path) ?? 0;
            var max = ReadCount(schema, "maxItems", path);
            if (max < min)
            {
                throw Invalid($"'maxItems' at '{path}' is below 'minItems'.");
            }

            if (max == 0)
            {
                return AddRule(hint, "\"[\" ws \"]\"");
            }

            var body = item + " ws";
            if (max != 1)
            {
                body += " ( \",\" ws " + item + " ws )" + Repetition(Math.Max(min - 1, 0), max - 1);
            }

            return AddRule(hint, "\"[\" ws " + (min == 0 ? "( " + body + " )?" : body) + " \"]\"");
        }

        /// <summary>
        /// Any range, bounded on one side or both, enforced exactly: a negative part ("-" and a range of magnitudes)
        /// and a non-negative part, each a range of digit strings (<see cref="DigitRange"/>). An open side stops at
        /// 16 digits, as <c>integer</c> does.
        /// </summary>
        private string VisitInteger(JsonElement schema, string hint, string path)
        {
            var minimum = ReadBound(schema, "minimum", "exclusiveMinimum", path, upper: false);
            var maximum = ReadBound(schema, "maximum", "exclusiveMaximum", path, upper: true);
            if (minimum is null && maximum is null)
            {
                return "integer";
            }

            var low = minimum is { } min ? (min.Exclusive ? decimal.Floor(min.Value) + 1 : decimal.Ceiling(min.Value)) : (decimal?)null;
            var high = maximum is { } max ? (max.Exclusive ? decimal.Ceiling(max.Value) - 1 : decimal.Floor(max.Value)) : (decimal?)null;
            if (low > high)
            {
                throw Invalid($"The integer range at '{path}' is empty.");
            }

            var open = Math.Max(OpenIntegerLimit, Math.Max(Math.Abs(low ?? 0), Math.Abs(high ?? 0)));
            var from = low ?? -open;
            var to = high ?? open;
            var parts = new List<string>();
            if (from < 0)
            {
                parts.Add("\"-\" " + DigitRange(Math.Max(1, -to), -from));
            }

            if (to >= 0)
            {
                parts.Add(DigitRange(Math.Max(0, from), to));
            }

            return AddRule(hint, string.Join(" | ", parts));
        }

        /// <summary>
        /// Numbers within their bounds, exactly: without an exponent, an integer part of at most 16 digits (more only
        /// as a bound needs) and at most 16 fraction digits. A negative part ("-" and magnitudes above 0) and a
        /// non-negative one, each split by integer part: those strictly between the bounds' take any fraction, the
        /// bounds' own integer parts take the fractions on the right side of the bounds' fractions.
        /// </summary>
        private string VisitNumber(JsonElement schema, string hint, string path)
        {
            var minimum = ReadBound(schema, "minimum", "exclusiveMinimum", path, upper: false);
            var maximum = ReadBound(schema, "maximum", "exclusiveMaximum", path, upper: true);
            if (minimum is null && maximum is null)
            {
                return "number";
            }

            if (minimum is { } min && maximum is { } max && (min.Value > max.Value || (min.Value == max.Value && (min.Exclusive || max.Exclusive))))
            {
                throw Invalid($"The number range at '{path}' is empty.");
            }

            var parts = new List<string>();
            if (minimum is not { Value: >= 0 })
            {
                // Magnitudes of negative numbers: above 0 (no "-0") or the maximum's, up to the minimum's.
                var lower = maximum is { Value: < 0 } below ? (-below.Value, below.Exclusive) : (0m, true);
                var upper = minimum is { } least ? (-least.Value, least.Exclusive) : ((decimal, bool)?)null;
                if (Magnitudes(lower, upper) is { } negative)
                {
                    parts.Add("\"-\" " + negative);
                }
            }

            if (maximum is not { Value: < 0 })
            {
                var lower = minimum is { Value: >= 0 } least ? (least.Value, least.Exclusive) : (0m, false);
                if (Magnitudes(lower, maximum is { } most ? (most.Value, most.Exclusive) : null) is { } positive)
                {
                    parts.Add(positive);
                }
            }

            return parts.Count > 0 ? AddRule(hint, string.Join(" | ", parts)) : throw Invalid($"The number range at '{path}' is empty.");
        }

        private const int FractionDigits = 16;

        /// <summary>Non-negative numerals from <paramref name="lower"/> to <paramref name="upper"/> (null: open), or null when none.</summary>
        private static string? Magnitudes((decimal Value, bool Exclusive) lower, (decimal Value, bool Exclusive)? upper)
        {
            var (lowInteger, lowFraction) = Split(lower.Value);
            var alternatives = new List<string>();
            if (upper is { } top)
            {
                var (highInteger, highFraction) = Split(top.Value);
                if (lowInteger == highInteger)
                {
                    alternatives.Add(WithFraction(Literal(Numeral(lowInteger)), Between(lowFraction, lower.Exclusive, highFraction, top.Exclusive, FractionDigits, mayEnd: true)));
                }
                else
                {
                    alternatives.Add(WithFraction(Literal(Numeral(lowInteger)), AtLeast(lowFraction, lower.Exclusive, FractionDigits, mayEnd: true)));
                    if (highInteger - lowInteger >= 2)
                    {
                        alternatives.Add(DigitRange(lowInteger + 1, highInteger - 1) + " " + AnyFraction);
                    }

                    alternatives.Add(WithFraction(Literal(Numeral(highInteger)), AtMost(highFraction, top.Exclusive, FractionDigits, mayEnd: true)));
                }
            }
            else
            {
                alternatives.Add(WithFraction(Literal(Numeral(lowInteger)), AtLeast(lowFraction, lower.Exclusive, FractionDigits, mayEnd: true)));
                var highest = Math.Max(OpenIntegerLimit, lowInteger);
                if (highest > lowInteger)
                {
                    alternatives.Add(DigitRange(lowInteger + 1, highest) + " " + AnyFraction);
                }
            }

            alternatives.RemoveAll(a => a.Length == 0);
            return alternatives.Count > 0 ? "( " + string.Join(" | ", alternatives) + " )" : null;
        }

        private const string AnyFraction = "( \".\" [0-9]{1,16} )?";

        private static (decimal Integer, string Fraction) Split(decimal value)
        {
            var integer = decimal.Floor(value);
            var text = (value - integer).ToString(CultureInfo.InvariantCulture);
            return (integer, text.Contains('.', StringComparison.Ordinal) ? text[(text.IndexOf('.', StringComparison.Ordinal) + 1)..].TrimEnd('0') : string.Empty);
        }

        private static string Numeral(decimal integer) => integer.ToString("0", CultureInfo.InvariantCulture);

        /// <summary>
        /// An integer part and the fractions that may follow it: the integer part alone when it takes none, "" when
        /// no value fits (<paramref name="fraction"/> null).
        /// </summary>
        private static string WithFraction(string integer, Tail? fraction) => fraction switch
        {
            null => string.Empty,
            { Digits: null } => integer,
            { Digits: { } digits, MayEnd: true } => integer + " ( \".\" " + digits + " )?",
            { Digits: { } digits } => integer + " \".\" " + digits,
        };

        /// <summary>Fraction digits (at least one when present): <see cref="Digits"/> null when there are none; <see cref="MayEnd"/>: none at all is allowed too.</summary>
        private sealed record Tail(string? Digits, bool MayEnd);

        /// <summary>
        /// Digit strings D of up to <paramref name="room"/> digits with 0.D at least (or above) 0.<paramref name="low"/>:
        /// as a tail whose empty form is allowed when <paramref name="mayEnd"/> and 0 qualifies.
        /// </summary>
        private static Tail? AtLeast(string low, bool exclusive, int room, bool mayEnd) =>
            Between(low, exclusive, null, false, room, mayEnd);

        private static Tail? AtMost(string high, bool exclusive, int room, bool mayEnd) =>
            Between(string.Empty, false, high, exclusive, room, mayEnd);

        /// <summary>
        /// Digit strings D (up to <paramref name="room"/> digits) with 0.<paramref name="low"/> ≤ 0.D ≤ 0.<paramref name="high"/>
        /// (strict where exclusive; <paramref name="high"/> null: no upper bound), digit by digit: the bounds' first
        /// digits, and any digit between them followed by anything.
        /// </summary>
        private static Tail? Between(string low, bool lowExclusive, string? high, bool highExclusive, int room, bool mayEnd)
        {
            // D may end here when its value, 0, is within the bounds.
            var zeroFits = low.Length == 0 && !lowExclusive && (high is null || high.Length > 0 || !highExclusive);
            if (room == 0)
            {
                return zeroFits && mayEnd ? new Tail(null, true) : null;
            }

            if (low.Length == 0 && !lowExclusive && high is null)
            {
                // Unbounded on both sides: any digits.
                return new Tail("[0-9]{1," + room.ToString(CultureInfo.InvariantCulture) + "}", mayEnd);
            }

            var lowDigit = low.Length > 0 ? low[0] : '0';
            var highDigit = high is null ? '9' : high.Length > 0 ? high[0] : '0';
            var any = room > 1 ? " [0-9]{0," + (room - 1).ToString(CultureInfo.InvariantCulture) + "}" : string.Empty;
            var alternatives = new List<string>();
            if (lowDigit == highDigit && high is not null)
            {
                Add(lowDigit, Between(Rest(low), lowExclusive, Rest(high), highExclusive, room - 1, mayEnd: true));
            }
            else
            {
                Add(lowDigit, Between(Rest(low), lowExclusive, null, false, room - 1, mayEnd: true));
                var first = (char)(lowDigit + 1);
                var last = high is null ? '9' : (char)(highDigit - 1);
                if (first <= last)
                {
                    alternatives.Add((first == last ? Literal(first.ToString()) : "[" + first + "-" + last + "]") + any);
                }

                if (high is not null)
                {
                    Add(highDigit, Between(string.Empty, false, Rest(high), highExclusive, room - 1, mayEnd: true));
                }
            }

            if (alternatives.Count == 0)
            {
                return zeroFits && mayEnd ? new Tail(null, true) : null;
            }

            return new Tail("( " + string.Join(" | ", alternatives) + " )", zeroFits && mayEnd);

            void Add(char digit, Tail? rest)
            {
                if (rest is not null)
                {
                    alternatives.Add(rest.Digits is null ? Literal(digit.ToString())
                        : Literal(digit.ToString()) + (rest.MayEnd ? " " + rest.Digits + "?" : " " + rest.Digits));
                }
            }
        }

        private static string Rest(string digits) => digits.Length > 0 ? digits[1..] : string.Empty;

        /// <summary>The largest magnitude an open side of an integer range allows: 16 digits.</summary>
        private const decimal OpenIntegerLimit = 9_999_999_999_999_999m;

        /// <summary>
        /// The decimal numerals (no leading zeros) of <paramref name="from"/> to <paramref name="to"/>, both
        /// non-negative: per length between theirs, one range of equal-length digit strings.
        /// </summary>
        private static string DigitRange(decimal from, decimal to)
        {
            var low = from.ToString("0", CultureInfo.InvariantCulture);
            var high = to.ToString("0", CultureInfo.InvariantCulture);
            if (low.Length == high.Length)
            {
                return "( " + SameLengthRange(low, high) + " )";
            }

            var alternatives = new List<string> { SameLengthRange(low, new string('9', low.Length)) };
            if (high.Length - low.Length > 1)
            {
                // Every numeral of the lengths strictly between.
                alternatives.Add("[1-9] [0-9]" + Repetition(low.Length, high.Length - 2));
            }

            alternatives.Add(SameLengthRange("1" + new string('0', high.Length - 1), high));
            return "( " + string.Join(" | ", alternatives) + " )";
        }

        /// <summary>
        /// The digit strings of one length from <paramref name="low"/> to <paramref name="high"/>: a shared first digit
        /// then the rest's range; else the low first digit and anything from the rest of low up, the digits between
        /// and anything, the high first digit and anything up to the rest of high. The alternatives never overlap.
        /// </summary>
        private static string SameLengthRange(string low, string high)
        {
            if (low.Length == 0)
            {
                return string.Empty;
            }

            if (low == high)
            {
                return Literal(low);
            }

            var rest = low.Length - 1;
            if (low[0] == high[0])
            {
                return Literal(low[..1]) + " ( " + SameLengthRange(low[1..], high[1..]) + " )";
            }

            // A first digit whose rest is unconstrained joins the digits between.
            var lowFree = low.AsSpan(1).TrimStart('0').IsEmpty;
            var highFree = high.AsSpan(1).TrimStart('9').IsEmpty;
            var firstFree = lowFree ? low[0] : (char)(low[0] + 1);
            var lastFree = highFree ? high[0] : (char)(high[0] - 1);
            var alternatives = new List<string>();
            if (!lowFree)
            {
                alternatives.Add(Literal(low[..1]) + " ( " + SameLengthRange(low[1..], new string('9', rest)) + " )");
            }

            if (firstFree <= lastFree)
            {
                var digits = firstFree == lastFree ? Literal(firstFree.ToString()) : "[" + firstFree + "-" + lastFree + "]";
                alternatives.Add(rest == 0 ? digits : digits + " [0-9]{" + rest.ToString(CultureInfo.InvariantCulture) + "}");
            }

            if (!highFree)
            {
                alternatives.Add(Literal(high[..1]) + " ( " + SameLengthRange(new string('0', rest), high[1..]) + " )");
            }

            return string.Join(" | ", alternatives);
        }

        private string VisitString(JsonElement schema, string hint, string path)
        {
            var min = ReadCount(schema, "minLength", path);
            var max = ReadCount(schema, "maxLength", path);
            if (schema.TryGetProperty("format", out var format) && EnforcedFormat(format, path) is { } kind)
            {
                // The format fixes the string's shape; lengths beside it add nothing a client could rely on.
                return "\"\\\"\" " + FormatRule(kind) + " \"\\\"\"";
            }
            if (min is null && max is null)
            {
                return "string";
            }

            if (max < (min ?? 0))
            {
                throw Invalid($"'maxLength' at '{path}' is below 'minLength'.");
            }

            return AddRule(hint, "\"\\\"\" char" + Repetition(min ?? 0, max) + " \"\\\"\"");
        }

        /// <summary>
        /// The format llama.cpp's converter enforces that <paramref name="format"/> names (date, time, date-time, uuid;
        /// uuid1 to uuid5 as uuid), or null for any other, which is left to the model.
        /// </summary>
        private static string? EnforcedFormat(JsonElement format, string path)
        {
            var name = format.ValueKind == JsonValueKind.String ? format.GetString()! : throw Invalid($"'format' at '{path}' must be a string.");
            var kind = name is ['u', 'u', 'i', 'd', >= '1' and <= '5'] ? "uuid" : name;
            return kind is "date" or "time" or "date-time" or "uuid" ? kind : null;
        }

        private string FormatRule(string kind)
        {
            if (!_formatRules.TryGetValue(kind, out var rule))
            {
                rule = kind == "date-time" ? AddRule("format-date-time", FormatRule("date") + " \"T\" " + FormatRule("time")) : AddRule("format-" + kind, FormatRules[kind]);
                _formatRules[kind] = rule;
            }

            return rule;
        }

        private string VisitEnum(JsonElement values, string hint, string path)
        {
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
            {
                throw Invalid($"'enum' at '{path}' must be a non-empty array.");
            }

            return AddRule(hint, string.Join(" | ", values.EnumerateArray().Select(JsonLiteral).Distinct(StringComparer.Ordinal)));
        }

        private string VisitAlternatives(JsonElement alternatives, string hint, string path, int depth)
        {
            if (alternatives.ValueKind != JsonValueKind.Array || alternatives.GetArrayLength() == 0)
            {
                throw Invalid($"'{path}' must be a non-empty array.");
            }

            var expressions = alternatives.EnumerateArray()
                .Select((schema, i) => Visit(schema, hint + "-" + i.ToString(CultureInfo.InvariantCulture), path + "/" + i.ToString(CultureInfo.InvariantCulture), depth + 1))
                .Distinct(StringComparer.Ordinal);
            return AddRule(hint, string.Join(" | ", expressions));
        }

        private string VisitReference(JsonElement reference, string path, int depth)
        {
            var pointer = reference.ValueKind == JsonValueKind.String ? reference.GetString()! : null;
            if (pointer is null || !pointer.StartsWith('#'))
            {
                throw Invalid($"'$ref' at '{path}' must be a local reference ('#/...').");
            }

            if (_unguardedRefs.Contains(pointer))
            {
                throw Invalid($"The schema at '{path}' refers to '{pointer}', which contains it, without an object or array between: a value of it could never end.");
            }

            if (_refRules.TryGetValue(pointer, out var existing))
            {
                return existing;
            }

            // Name the rule before visiting the target, so a recursive schema refers to itself.
            var name = ReserveName("ref" + pointer.TrimStart('#'));
            _refRules[pointer] = name;
            var target = Resolve(pointer, path);
            var index = _rules.Count;
            _rules.Add(new(name, string.Empty));
            _unguardedRefs.Add(pointer);
            _rules[index] = new(name, Visit(target, name, pointer, depth + 1));
            _unguardedRefs.Remove(pointer);
            return name;
        }

        private JsonElement Resolve(string pointer, string path)
        {
            var current = _root;
            foreach (var rawSegment in pointer.TrimStart('#').Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var segment = Uri.UnescapeDataString(rawSegment).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                if (current.ValueKind == JsonValueKind.Object && current.TryGetProperty(segment, out var child))
                {
                    current = child;
                }
                else if (current.ValueKind == JsonValueKind.Array && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < current.GetArrayLength())
                {
                    current = current[i];
                }
                else
                {
                    throw Invalid($"'$ref' '{pointer}' at '{path}' does not resolve inside the schema.");
                }
            }

            return current;
        }

        /// <summary>An object or array opened: what is inside starts after its bracket. Returns the outer set to restore.</summary>
        private HashSet<string> Guard()
        {
            var outer = _unguardedRefs;
            _unguardedRefs = new(StringComparer.Ordinal);
            return outer;
        }

        private string ReserveName(string hint)
        {
            var sanitized = new StringBuilder(hint.Length);
            foreach (var c in hint)
            {
                if (char.IsAsciiLetterOrDigit(c))
                {
                    sanitized.Append(c);
                }
                else if (sanitized.Length > 0 && sanitized[^1] != '-')
                {
                    sanitized.Append('-');
                }
            }

            var baseName = sanitized.ToString().Trim('-');
            if (baseName.Length == 0)
            {
                baseName = "rule";
            }

            var name = baseName;
            for (var i = 2; !_names.Add(name); i++)
            {
                name = baseName + "-" + i.ToString(CultureInfo.InvariantCulture);
            }

            return name;
        }

        private static string JsonLiteral(JsonElement value) => Literal(JsonSerializer.Serialize(value, CompactJson));

        private static int? ReadCount(JsonElement schema, string keyword, string path)
        {
            if (!schema.TryGetProperty(keyword, out var count))
            {
                return null;
            }

            if (count.ValueKind != JsonValueKind.Number || !count.TryGetDecimal(out var value) || value < 0 || value != decimal.Truncate(value))
            {
                throw Invalid($"'{keyword}' at '{path}' must be a non-negative integer.");
            }

            // An upper count beyond the grammar's repetition limit is dropped: that only widens what is accepted, and
            // everyday schemas carry one (pydantic's HttpUrl: maxLength 2083). A lower one cannot be dropped.
            return value <= MaxCount ? (int)value
                : keyword.StartsWith("max", StringComparison.Ordinal) ? null
                : throw Invalid($"'{keyword}' at '{path}' is {value.ToString(CultureInfo.InvariantCulture)}, above the {MaxCount} this server supports.");
        }

        /// <summary>
        /// The tighter of a side's inclusive and exclusive bounds (JSON Schema 2020-12; draft 4's boolean exclusive
        /// keyword makes the inclusive one exclusive), enforced exactly, so a bound <see cref="decimal"/> cannot hold
        /// exactly is refused; except one of 29 or more integer digits on the side where dropping it only widens the
        /// range (a maximum far above zero, a minimum far below): no numeral this grammar writes reaches it.
        /// </summary>
        private static (decimal Value, bool Exclusive)? ReadBound(JsonElement schema, string inclusive, string exclusive, string path, bool upper)
        {
            var draft4Exclusive = schema.TryGetProperty(exclusive, out var flag) && flag.ValueKind is JsonValueKind.True or JsonValueKind.False;
            var bound = ReadOne(inclusive, exclusive: draft4Exclusive && flag.ValueKind == JsonValueKind.True);
            if (!draft4Exclusive && ReadOne(exclusive, exclusive: true) is { } strict
                && (bound is not { } loose || (upper ? strict.Value <= loose.Value : strict.Value >= loose.Value)))
            {
                bound = strict;
            }

            return bound;

            (decimal Value, bool Exclusive)? ReadOne(string keyword, bool exclusive)
            {
                if (!schema.TryGetProperty(keyword, out var element))
                {
                    return null;
                }

                if (element.ValueKind != JsonValueKind.Number)
                {
                    throw Invalid($"'{keyword}' at '{path}' must be a number.");
                }

                var exact = ExactNumber.Parse(element.GetRawText());
                if (element.TryGetDecimal(out var value) && exact == ExactNumber.Parse(value.ToString(CultureInfo.InvariantCulture)))
                {
                    return (value, exclusive);
                }

                if (exact.IntegerDigits >= 29 && exact.Negative != upper)
                {
                    return null;
                }

                throw Invalid($"'{keyword}' at '{path}' is {element.GetRawText()}, which this server cannot enforce exactly: a bound has at most 28 significant digits, 28 after the decimal point, and a magnitude below 7.9e28.");
            }
        }

        /// <summary>A JSON numeral's exact value: sign, significant digits (no leading or trailing zeros) and the power of ten they are scaled by.</summary>
        private readonly record struct ExactNumber(bool Negative, string Digits, BigInteger Exponent)
        {
            /// <summary>Digits before the decimal point (0 or less for a magnitude below 1).</summary>
            public BigInteger IntegerDigits => Digits.Length + Exponent;

            public static ExactNumber Parse(string numeral)
            {
                var negative = numeral.StartsWith('-');
                var unsigned = negative ? numeral[1..] : numeral;
                var e = unsigned.IndexOfAny(['e', 'E']);
                var exponent = e < 0 ? BigInteger.Zero : BigInteger.Parse(unsigned[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                var mantissa = e < 0 ? unsigned : unsigned[..e];
                var point = mantissa.IndexOf('.', StringComparison.Ordinal);
                if (point >= 0)
                {
                    exponent -= mantissa.Length - point - 1;
                    mantissa = mantissa.Remove(point, 1);
                }

                var digits = mantissa.TrimStart('0');
                var trimmed = digits.TrimEnd('0');
                return trimmed.Length == 0 ? new(false, string.Empty, BigInteger.Zero) : new(negative, trimmed, exponent + (digits.Length - trimmed.Length));
            }
        }

        private static string Repetition(int min, int? max) => max is { } upper
            ? "{" + min.ToString(CultureInfo.InvariantCulture) + "," + upper.ToString(CultureInfo.InvariantCulture) + "}"
            : "{" + min.ToString(CultureInfo.InvariantCulture) + ",}";
    }
}
