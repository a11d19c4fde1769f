using System.Globalization;
using System.Text.Json;
using LlmServer.Engine.Grammars;

namespace LlmServer.Engine.Tests.Grammars;

public sealed class JsonGrammarTests
{
    private static string Convert(string schema)
    {
        using var document = JsonDocument.Parse(schema);
        return JsonGrammar.FromSchema(document.RootElement);
    }

    private static string Rule(string grammar, string name) =>
        grammar.Split('\n').Single(line => line.StartsWith(name + " ::= ", StringComparison.Ordinal))[(name.Length + 5)..];

    [Fact]
    public void AnyObject_has_an_object_root()
    {
        Assert.Equal("object", Rule(JsonGrammar.AnyObject, "root"));
        Assert.Contains("value ::= object | array | string | number | boolean | null", JsonGrammar.AnyObject, StringComparison.Ordinal);
    }

    [Fact]
    public void Required_properties_are_mandatory_and_optional_ones_skippable_in_declared_order()
    {
        var grammar = Convert("""{ "type": "object", "properties": { "a": { "type": "integer" }, "b": { "type": "string" } }, "required": ["b"] }""");

        Assert.Equal("schema", Rule(grammar, "root"));
        Assert.Equal(
            """
            "{" ws ( "\"a\"" ws ":" ws integer ws "," ws "\"b\"" ws ":" ws string ws | "\"b\"" ws ":" ws string ws ) "}"
            """,
            Rule(grammar, "schema"));
    }

    [Fact]
    public void All_optional_properties_allow_the_empty_object()
    {
        var grammar = Convert("""{ "properties": { "a": { "type": "boolean" }, "b": { "type": "null" } } }""");

        Assert.Equal(
            """
            "{" ws ( "\"a\"" ws ":" ws boolean ws ( "," ws "\"b\"" ws ":" ws null ws )? | "\"b\"" ws ":" ws null ws )? "}"
            """,
            Rule(grammar, "schema"));
    }

    [Fact]
    public void Enum_and_const_values_become_escaped_json_literals()
    {
        var grammar = Convert("""{ "enum": ["say \"hi\"\n", 3, true, null, "é"] }""");

        Assert.Equal(
            """
            "\"say \\\"hi\\\"\\n\"" | "3" | "true" | "null" | "\"é\""
            """,
            Rule(grammar, "schema"));
    }

    [Fact]
    public void Arrays_and_strings_honour_their_bounds()
    {
        var grammar = Convert("""{ "type": "array", "items": { "type": "string", "minLength": 1, "maxLength": 3 }, "minItems": 1, "maxItems": 2 }""");

        Assert.Equal("\"\\\"\" char{1,3} \"\\\"\"", Rule(grammar, "schema-item"));
        Assert.Equal("\"[\" ws schema-item ws ( \",\" ws schema-item ws ){0,1} \"]\"", Rule(grammar, "schema"));
    }

    [Fact]
    public void Type_lists_and_recursive_references_resolve()
    {
        var grammar = Convert("""
            {
              "$defs": { "node": { "type": "object", "properties": { "next": { "anyOf": [{ "$ref": "#/$defs/node" }, { "type": "null" }] } } } },
              "$ref": "#/$defs/node"
            }
            """);

        Assert.Equal("ref-defs-node", Rule(grammar, "root"));
        Assert.Equal("ref-defs-node-2", Rule(grammar, "ref-defs-node"));
        Assert.Equal("ref-defs-node | null", Rule(grammar, "ref-defs-node-next"));
        Assert.Equal("string | null", Rule(Convert("""{ "type": ["string", "null"] }"""), "schema"));
    }

    public static TheoryData<string, long?, long?> IntegerRanges => new()
    {
        // Schema bounds, then the integer range they mean (null: open).
        { """ "minimum": -5, "maximum": 1000 """, -5, 1000 },
        { """ "minimum": 0.5, "exclusiveMaximum": 4 """, 1, 3 },
        { """ "exclusiveMinimum": -1000, "maximum": -5 """, -999, -5 },
        { """ "minimum": 0, "maximum": 0 """, 0, 0 },
        { """ "minimum": -99, "maximum": 99 """, -99, 99 },
        { """ "minimum": 7, "maximum": 123456 """, 7, 123456 },
        { """ "minimum": 1999, "maximum": 2001 """, 1999, 2001 },
        { """ "minimum": 100, "maximum": 999 """, 100, 999 },
        { """ "minimum": 1000000000000000, "maximum": 1000000000000300 """, 1000000000000000, 1000000000000300 },
        { """ "minimum": 10 """, 10, null },
        { """ "exclusiveMaximum": -3 """, null, -4 },
        { """ "maximum": 1000 """, null, 1000 },
        { """ "minimum": -250, "maximum": 9.5 """, -250, 9 },
        { """ "minimum": 10, "maximum": 1e300 """, 10, null },
        { """ "minimum": -1e300, "exclusiveMaximum": 1000 """, null, 999 },
        { """ "minimum": 0, "exclusiveMinimum": 5, "maximum": 20, "exclusiveMaximum": 30 """, 6, 20 },
        { """ "minimum": 3, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false """, 4, 9 },
    };

    [Theory]
    [MemberData(nameof(IntegerRanges))]
    public void Integer_ranges_accept_exactly_their_values(string bounds, long? low, long? high)
    {
        var grammar = Convert("{ \"type\": \"integer\", " + bounds + " }");
        var matcher = new GbnfMatcher(grammar);

        // Every value near each bound and across small ranges, then values of every length up to 17 digits.
        var values = new SortedSet<long>();
        foreach (var edge in new[] { low, high, 0 })
        {
            for (var delta = -300L; delta <= 300 && edge is not null; delta++)
            {
                values.Add(edge.Value + delta);
            }
        }

        var random = new Random(7);
        for (var digits = 1; digits <= 17; digits++)
        {
            for (var i = 0; i < 40; i++)
            {
                var magnitude = (long)(Math.Pow(10, digits - 1) + random.NextDouble() * 9 * Math.Pow(10, digits - 1));
                values.Add(magnitude);
                values.Add(-magnitude);
            }
        }

        foreach (var value in values)
        {
            var inRange = (low is null || value >= low) && (high is null || value <= high) && Math.Abs(value) <= 9_999_999_999_999_999;
            Assert.True(inRange == matcher.Matches(value.ToString(CultureInfo.InvariantCulture)), $"{value} with {bounds}: expected {(inRange ? "accepted" : "refused")}.");
        }

        // Only the canonical form: no leading zeros, no plus sign.
        Assert.False(matcher.Matches("0" + (high ?? 5).ToString(CultureInfo.InvariantCulture)));
        Assert.False(matcher.Matches("+" + (high ?? 5).ToString(CultureInfo.InvariantCulture)));

        using var llamaCpp = new LlamaCppGrammar();
        Assert.True(llamaCpp.Accepts(grammar), grammar);
    }

    public static TheoryData<string, string?, bool, string?, bool> NumberRanges => new()
    {
        // Schema bounds, then the range they mean: low, exclusive, high, exclusive (null: open).
        { """ "minimum": 0.5, "maximum": 1.5 """, "0.5", false, "1.5", false },
        { """ "exclusiveMinimum": 0, "exclusiveMaximum": 1 """, "0", true, "1", true },
        { """ "minimum": -2.25, "exclusiveMaximum": 3.75 """, "-2.25", false, "3.75", true },
        { """ "exclusiveMinimum": -1.5, "maximum": -0.25 """, "-1.5", true, "-0.25", false },
        { """ "minimum": 0.5 """, "0.5", false, null, false },
        { """ "exclusiveMinimum": 0 """, "0", true, null, false },
        { """ "maximum": -1.05 """, null, false, "-1.05", false },
        { """ "exclusiveMaximum": 0 """, null, false, "0", true },
        { """ "minimum": 1.05, "maximum": 1.05 """, "1.05", false, "1.05", false },
        { """ "minimum": 2, "exclusiveMaximum": 2.5 """, "2", false, "2.5", true },
        { """ "minimum": -100, "maximum": 250.125 """, "-100", false, "250.125", false },
        { """ "exclusiveMinimum": -1e300, "maximum": -1.05 """, null, false, "-1.05", false },
        { """ "minimum": 1, "exclusiveMinimum": 1, "maximum": 2, "exclusiveMaximum": 2 """, "1", true, "2", true },
        { """ "minimum": -0.5, "exclusiveMinimum": true """, "-0.5", true, null, false },
        { """ "minimum": 0.5, "exclusiveMaximum": 123456789012345678901234567890 """, "0.5", false, null, false },
    };

    [Theory]
    [MemberData(nameof(NumberRanges))]
    public void Number_ranges_accept_exactly_their_values(string bounds, string? low, bool lowExclusive, string? high, bool highExclusive)
    {
        var grammar = Convert("{ \"type\": \"number\", " + bounds + " }");
        var matcher = new GbnfMatcher(grammar);
        var lowValue = low is null ? (decimal?)null : decimal.Parse(low, CultureInfo.InvariantCulture);
        var highValue = high is null ? (decimal?)null : decimal.Parse(high, CultureInfo.InvariantCulture);

        // Integer parts around the bounds and zero, with fractions on both sides of the bounds' own.
        var integers = new SortedSet<long> { 0, 99999, 1234567890123456 };
        foreach (var edge in new[] { lowValue, highValue })
        {
            for (var delta = -3; delta <= 3 && edge is not null; delta++)
            {
                integers.Add((long)decimal.Truncate(edge.Value) + delta);
            }
        }

        string[] fractions = ["", "0", "00", "04", "05", "049", "05000001", "1", "124", "125", "1250", "126", "24", "25", "2499999999999999", "250", "251", "4", "49", "5", "50", "5000000000000001", "74", "75", "750", "751", "9", "99", "9999999999999999"];
        foreach (var integer in integers)
        {
            foreach (var sign in new[] { "", "-" })
            {
                foreach (var fraction in fractions)
                {
                    var text = sign + Math.Abs(integer).ToString(CultureInfo.InvariantCulture) + (fraction.Length > 0 ? "." + fraction : string.Empty);
                    var value = decimal.Parse(text, CultureInfo.InvariantCulture);
                    var inRange = (lowValue is null || (lowExclusive ? value > lowValue : value >= lowValue))
                        && (highValue is null || (highExclusive ? value < highValue : value <= highValue))
                        && !(sign == "-" && value == 0);
                    Assert.True(inRange == matcher.Matches(text), $"{text} with {bounds}: expected {(inRange ? "accepted" : "refused")}.");
                }
            }
        }

        // Bounded numbers have no exponent, and at most 16 fraction digits.
        Assert.False(matcher.Matches((highValue ?? lowValue)!.Value.ToString(CultureInfo.InvariantCulture) + "e0"));
        Assert.False(matcher.Matches("1." + new string('0', 17)));

        using var llamaCpp = new LlamaCppGrammar();
        Assert.True(llamaCpp.Accepts(grammar), grammar);
    }

    [Fact]
    public void Bounds_far_out_on_the_side_that_only_widens_are_dropped()
    {
        Assert.Equal("number", Rule(Convert("""{ "type": "number", "maximum": 1e300 }"""), "root"));
        Assert.Equal("integer", Rule(Convert("""{ "type": "integer", "minimum": -1e300 }"""), "root"));
        Assert.Equal("integer", Rule(Convert("""{ "type": "integer", "exclusiveMaximum": 1E+29 }"""), "root"));
    }

    [Theory]
    [InlineData("""{ "type": "integer", "minimum": 1e300 }""", "'minimum' at '#' is 1e300")]
    [InlineData("""{ "type": "number", "maximum": -1e300 }""", "'maximum' at '#' is -1e300")]
    [InlineData("""{ "type": "integer", "exclusiveMaximum": -1e29 }""", "'exclusiveMaximum' at '#' is -1e29")]
    [InlineData("""{ "type": "integer", "exclusiveMinimum": 79228162514264337593543950336 }""", "'exclusiveMinimum' at '#' is 79228162514264337593543950336")]
    [InlineData("""{ "type": "object", "properties": { "n": { "type": "number", "minimum": 1e-30, "maximum": 1e-29 } } }""", "'minimum' at '#/properties/n' is 1e-30")]
    [InlineData("""{ "type": "number", "minimum": 0, "maximum": 1e-29 }""", "'maximum' at '#' is 1e-29")]
    [InlineData("""{ "type": "number", "minimum": 1.00000000000000000000000000001 }""", "'minimum' at '#' is 1.00000000000000000000000000001")]
    public void Bounds_decimal_cannot_hold_exactly_are_refused_unless_dropping_only_widens(string schema, string reason)
    {
        var error = Assert.Throws<ArgumentException>(() => Convert(schema));
        Assert.Contains(reason + ", which this server cannot enforce exactly", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{ "type": "number", "minimum": 1.0E-28, "maximum": 2.50e2 }""")]
    [InlineData("""{ "type": "integer", "minimum": -0, "maximum": 7.9228162514264337593543950335E28 }""")]
    [InlineData("""{ "type": "number", "exclusiveMinimum": 0.000, "maximum": 12e-3 }""")]
    public void Bounds_decimal_holds_exactly_are_enforced_whatever_their_spelling(string schema)
    {
        Assert.NotEqual("number", Rule(Convert(schema), "root"));
        Assert.NotEqual("integer", Rule(Convert(schema), "root"));
    }

    [Theory]
    [InlineData("""{ "type": "object", "properties": { "n": { "type": "integer", "multipleOf": 7 } } }""", "multipleOf", "#/properties/n")]
    [InlineData("""{ "type": "object", "properties": { "a": { "type": "integer" } }, "minProperties": 1 }""", "minProperties", "#")]
    [InlineData("""{ "type": "object", "maxProperties": 3 }""", "maxProperties", "#")]
    [InlineData("""{ "type": "object", "propertyNames": { "maxLength": 3 } }""", "propertyNames", "#")]
    [InlineData("""{ "type": "array", "items": [{ "type": "string" }], "additionalItems": false }""", "additionalItems", "#")]
    [InlineData("""{ "$defs": { "a": { "type": "object", "dependencies": { "x": ["y"] } } }, "$ref": "#/$defs/a" }""", "dependencies", "#/$defs/a")]
    public void Assertions_it_cannot_enforce_are_refused_naming_keyword_and_place(string schema, string keyword, string place)
    {
        var error = Assert.Throws<ArgumentException>(() => Convert(schema));
        Assert.Equal($"'{keyword}' at '{place}' is a constraint the JSON grammar cannot enforce, so the schema is refused rather than broken.", error.Message);
    }

    [Fact]
    public void Annotations_and_unknown_keywords_are_ignored()
    {
        var plain = Convert("""{ "type": "object", "properties": { "a": { "type": "integer", "minimum": 1 } }, "required": ["a"] }""");
        var annotated = Convert("""
            { "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:x", "title": "T", "description": "D", "$comment": "C",
              "type": "object", "additionalProperties": false, "x-vendor": { "pattern": "ignored" }, "uniqueItems": false,
              "properties": { "a": { "type": "integer", "minimum": 1, "default": 3, "examples": [4], "deprecated": false, "readOnly": true } },
              "required": ["a"] }
            """);
        Assert.Equal(plain, annotated);
    }

    [Fact]
    public void Assertions_on_types_the_schema_rules_out_are_ignored()
    {
        Assert.Equal("integer", Rule(Convert("""{ "type": "integer", "pattern": "^1$", "minProperties": 2, "uniqueItems": true, "format": "email" }"""), "root"));
        Assert.Equal("string", Rule(Convert("""{ "type": "string", "multipleOf": 3, "maxContains": 1 }"""), "root"));
        Assert.Throws<ArgumentException>(() => Convert("""{ "type": ["integer", "string"], "multipleOf": 3 }"""));
        Assert.Throws<ArgumentException>(() => Convert("""{ "multipleOf": 3 }"""));
    }

    [Fact]
    public void Everyday_assertions_it_cannot_enforce_are_left_to_the_model()
    {
        // pydantic's EmailStr and HttpUrl, set[int] and Field(pattern=...): the grammar is the one without them.
        Assert.Equal(
            Convert("""{ "type": "object", "properties": { "e": { "type": "string" }, "u": { "type": "string", "minLength": 1 }, "s": { "type": "array", "items": { "type": "integer" } }, "p": { "type": "string" } }, "required": ["e", "u", "s", "p"] }"""),
            Convert("""{ "type": "object", "properties": { "e": { "type": "string", "format": "email" }, "u": { "type": "string", "format": "uri", "minLength": 1, "maxLength": 2083 }, "s": { "type": "array", "items": { "type": "integer" }, "uniqueItems": true }, "p": { "type": "string", "pattern": "^[a-z]+$" } }, "required": ["e", "u", "s", "p"] }"""));

        // A maximum beyond the grammar's repetition limit only widens: dropped.
        Assert.Equal(Convert("""{ "type": "array", "minItems": 2 }"""), Convert("""{ "type": "array", "minItems": 2, "maxItems": 100000 }"""));

        // An enforced format fixes the string's shape: lengths beside it change nothing.
        Assert.Equal(Convert("""{ "type": "string", "format": "date" }"""), Convert("""{ "type": "string", "format": "date", "maxLength": 12 }"""));
    }

    [Theory]
    [InlineData("date", new[] { "2024-01-31", "1999-12-01", "0000-04-30", "2023-02-28" }, new[] { "2024-02-30", "2024-04-31", "2024-13-01", "2024-00-10", "2024-1-01", "24-01-01" })]
    [InlineData("time", new[] { "00:00:00Z", "23:59:59.123+05:30", "12:30:00-08:00", "07:08:09.5Z" }, new[] { "24:00:00Z", "12:60:00Z", "12:00:00", "12:00Z", "12:00:00.Z" })]
    [InlineData("date-time", new[] { "2024-06-30T23:59:59Z", "1970-01-01T00:00:00.000+00:00" }, new[] { "2024-06-30 23:59:59Z", "2024-06-31T00:00:00Z", "2024-06-30T00:00:00" })]
    [InlineData("uuid", new[] { "123e4567-e89b-12d3-a456-426614174000", "ABCDEF01-2345-6789-abcd-ef0123456789" }, new[] { "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400g", "123e4567-e89b-12d3-a456-4266141740001" })]
    [InlineData("uuid4", new[] { "123e4567-e89b-42d3-a456-426614174000" }, new[] { "not-a-uuid" })]
    public void String_formats_llama_cpp_enforces_accept_exactly_their_strings(string format, string[] valid, string[] invalid)
    {
        var grammar = Convert("{ \"type\": \"object\", \"properties\": { \"at\": { \"type\": \"string\", \"format\": \"" + format + "\" }, \"again\": { \"type\": [\"string\", \"null\"], \"format\": \"" + format + "\" } }, \"required\": [\"at\", \"again\"] }");
        var matcher = new GbnfMatcher(grammar);
        foreach (var text in valid)
        {
            Assert.True(matcher.Matches("{\"at\":\"" + text + "\",\"again\":null}"), text);
            Assert.True(matcher.Matches("{\"at\":\"" + text + "\",\"again\":\"" + text + "\"}"), text);
        }

        foreach (var text in invalid)
        {
            Assert.False(matcher.Matches("{\"at\":\"" + text + "\",\"again\":null}"), text);
        }

        using var llamaCpp = new LlamaCppGrammar();
        Assert.True(llamaCpp.Accepts(grammar), grammar);
    }

    [Fact]
    public void A_format_that_is_not_a_string_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => Convert("""{ "type": "string", "format": 3 }"""));
        Assert.Contains("'format' at '#' must be a string", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Additional_properties_shape_objects_without_declared_properties()
    {
        var closed = new GbnfMatcher(Convert("""{ "type": "object", "additionalProperties": false }"""));
        Assert.True(closed.Matches("{}"));
        Assert.False(closed.Matches("{\"a\":1}"));

        var grammar = Convert("""{ "type": "object", "additionalProperties": { "type": "integer", "minimum": 0 } }""");
        var map = new GbnfMatcher(grammar);
        Assert.True(map.Matches("{}"));
        Assert.True(map.Matches("{\"a\":1, \"b\":20}"));
        Assert.False(map.Matches("{\"a\":-1}"));
        Assert.False(map.Matches("{\"a\":\"x\"}"));
        using var llamaCpp = new LlamaCppGrammar();
        Assert.True(llamaCpp.Accepts(grammar), grammar);

        var error = Assert.Throws<ArgumentException>(() => Convert("""{ "type": "object", "required": ["a"] }"""));
        Assert.Contains("'required' at '#' names properties that are not declared", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_number_range_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => Convert("""{ "type": "number", "exclusiveMinimum": 1.5, "maximum": 1.5 }"""));
        Assert.Contains("The number range at '#' is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nullable_admits_null_beside_the_schema_and_false_changes_nothing()
    {
        var grammar = Convert("""{ "type": "object", "properties": { "note": { "type": "string", "nullable": true, "maxLength": 4 }, "n": { "type": "integer", "nullable": false } }, "required": ["note", "n"] }""");

        Assert.Equal("schema-note | null", Rule(grammar, "schema-note-nullable"));
        Assert.Equal(
            """
            "{" ws ( "\"note\"" ws ":" ws schema-note-nullable ws "," ws "\"n\"" ws ":" ws integer ws ) "}"
            """,
            Rule(grammar, "schema"));
        Assert.Equal("value", Rule(Convert("""{ "nullable": true }"""), "root"));
    }

    [Fact]
    public void Whitespace_is_at_most_one_space_between_tokens()
    {
        // Wide whitespace rules (newlines, indentation) let a small model spend its whole budget on them.
        Assert.Equal("\" \"?", Rule(JsonGrammar.AnyObject, "ws"));
        Assert.Equal("\" \"?", Rule(Convert("""{ "type": "object", "properties": { "a": { "type": "array" } } }"""), "ws"));
    }

    [Fact]
    public void Literals_escape_quotes_backslashes_and_control_characters()
    {
        Assert.Equal(
            """
            "a\"b\\c\n\r\t\x01\x7Fé"
            """,
            JsonGrammar.Literal("a\"b\\c\n\r\t\u0001\u007Fé"));

        // A property name is matched as the JSON the model writes: its tab as the two characters \t.
        var grammar = Convert("""{ "properties": { "a\tb": { "type": "null" } }, "required": ["a\tb"] }""");
        Assert.Equal(
            """
            "{" ws ( "\"a\\tb\"" ws ":" ws null ws ) "}"
            """,
            Rule(grammar, "schema"));
    }

    [Fact]
    public void Nesting_beyond_32_levels_is_refused_before_it_exhausts_the_stack()
    {
        static string Nested(int levels) =>
            string.Concat(Enumerable.Repeat("""{ "type": "array", "items": """, levels)) + "{}" + new string('}', levels);

        Assert.Equal("schema", Rule(Convert(Nested(32)), "root"));
        var error = Assert.Throws<ArgumentException>(() => Convert(Nested(33)));
        Assert.Contains("nests deeper than 32 levels", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Counts_up_to_the_limit_and_recursion_through_containers_make_grammars_llama_cpp_takes()
    {
        using var llamaCpp = new LlamaCppGrammar();
        foreach (var schema in new[]
        {
            """{ "type": "string", "minLength": 1999, "maxLength": 1999 }""",
            """{ "type": "array", "minItems": 1999, "maxItems": 1999 }""",
            """{ "anyOf": [{ "type": "array", "items": { "$ref": "#" } }, { "type": "object", "properties": { "a": { "$ref": "#" } } }, { "type": "null" }] }""",
        })
        {
            Assert.True(llamaCpp.Accepts(Convert(schema)), schema);
        }
    }

    [Theory]
    [InlineData("""{ "type": "uuid" }""", "Unknown type 'uuid'")]
    [InlineData("""{ "allOf": [{ "type": "string" }] }""", "allOf")]
    [InlineData("""{ "properties": { "a": {} }, "required": ["b"] }""", "not declared: b")]
    [InlineData("""{ "$ref": "#/$defs/missing" }""", "does not resolve")]
    [InlineData("""{ "$ref": "https://example.com/schema" }""", "local reference")]
    [InlineData("""{ "type": "array", "minItems": 3, "maxItems": 2 }""", "below 'minItems'")]
    [InlineData("""[1, 2]""", "must be an object")]
    [InlineData("""{ "type": "integer", "minimum": 3, "maximum": 2.5 }""", "range at '#' is empty")]
    [InlineData("""{ "type": "integer", "minimum": "1" }""", "'minimum' at '#' must be a number")]
    [InlineData("""{ "$ref": 5 }""", "'$ref' at '#' must be a local reference")]
    [InlineData("""{ "properties": { "a": {} }, "required": [1] }""", "'required' at '#' must list strings")]
    [InlineData("""{ "properties": [] }""", "'properties' at '#' must be an object")]
    [InlineData("""{ "type": "string", "nullable": "yes" }""", "'nullable' at '#' must be true or false")]
    [InlineData("""{ "oneOf": [] }""", "'#/oneOf' must be a non-empty array")]
    [InlineData("""{ "anyOf": [{ "type": "tuple" }] }""", "Unknown type 'tuple' at '#/anyOf/0'")]
    [InlineData("""{ "type": "object", "properties": { "a": { "type": "string", "minLength": 5000 } }, "required": ["a"] }""", "'minLength' at '#/properties/a' is 5000, above the 1999 this server supports")]
    [InlineData("""{ "type": "array", "minItems": 100000 }""", "'minItems' at '#' is 100000, above the 1999")]
    [InlineData("""{ "type": "string", "minLength": 1.5 }""", "'minLength' at '#' must be a non-negative integer")]
    [InlineData("""{ "$ref": "#" }""", "refers to '#', which contains it, without an object or array between")]
    [InlineData("""{ "anyOf": [{ "type": "string" }, { "$ref": "#" }] }""", "at '#/anyOf/1' refers to '#'")]
    [InlineData("""{ "$defs": { "a": { "$ref": "#/$defs/b" }, "b": { "anyOf": [{ "$ref": "#/$defs/a" }, { "type": "null" }] } }, "$ref": "#/$defs/a" }""", "refers to '#/$defs/a', which contains it")]
    public void Schemas_it_cannot_enforce_are_refused_with_the_reason(string schema, string reason)
    {
        var error = Assert.Throws<ArgumentException>(() => Convert(schema));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);

        // The reason stands alone: front ends put it in their own error (the REST API's names the schema field).
        Assert.Null(error.ParamName);
    }
}
