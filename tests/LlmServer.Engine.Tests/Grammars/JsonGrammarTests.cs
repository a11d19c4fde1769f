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

    [Fact]
    public void Integer_ranges_are_exact_when_small_and_bounded_by_sign_and_digits_when_wide()
    {
        Assert.Equal("\"1\" | \"2\" | \"3\"", Rule(Convert("""{ "type": "integer", "minimum": 0.5, "exclusiveMaximum": 4 }"""), "schema"));
        Assert.Equal("( \"0\" | [1-9] [0-9]{0,5} )", Rule(Convert("""{ "type": "integer", "minimum": 0, "maximum": 100000 }"""), "schema"));
        Assert.Equal("\"-\"? ( \"0\" | [1-9] [0-9]{0,15} )", Rule(Convert("""{ "type": "integer", "maximum": 1000 }"""), "schema"));
        Assert.StartsWith("( \"0\"", Rule(Convert("""{ "type": "number", "exclusiveMinimum": 0 }"""), "schema"), StringComparison.Ordinal);
        Assert.Equal("number", Rule(Convert("""{ "type": "number", "maximum": 1e300 }"""), "root"));
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
    public void Schemas_it_cannot_enforce_are_refused_with_the_reason(string schema, string reason)
    {
        var error = Assert.Throws<ArgumentException>(() => Convert(schema));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }
}
