using System.Text;
using System.Text.Json;
using LLama;
using LLama.Common;
using LLama.Native;
using LlmServer.Engine.Grammars;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Grammars;

public sealed class GbnfValidatorTests
{
    /// <summary>What llama.cpp (LLamaSharp 0.30.0's native library) does with a grammar the validator refuses.</summary>
    public enum LlamaCpp
    {
        /// <summary>It refuses it too (NULL sampler).</summary>
        Refuses,

        /// <summary>It takes it; the validator refuses it on purpose (see <see cref="GbnfValidator"/>'s remarks).</summary>
        Accepts,

        /// <summary>It crashes, hangs or runs out of memory: never hand it over, even in a test.</summary>
        Crashes,
    }

    private static readonly Dictionary<string, string> Accepted = new()
    {
        ["json"] = """
            # JSON values, written in the style of llama.cpp's grammars/json.gbnf
            root    ::= object
            value   ::= object | array | string | number | ("true" | "false" | "null") ws

            object  ::=
              "{" ws (
                member
                ("," ws member)*
              )? "}" ws
            member  ::= string ":" ws value

            array   ::=
              "[" ws (
                value
                ("," ws value)*
              )? "]" ws

            string  ::=
              "\"" (
                [^"\\\x7F\x00-\x1F] |
                "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
              )* "\"" ws

            number  ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,3})? ws
            ws      ::= | " " | "\n" [ \t]{0,20}
            """,
        ["arithmetic"] = """
            root   ::= expr
            expr   ::= term (ws [-+] ws term)*
            term   ::= factor (ws [*/] ws factor)*
            factor ::= number | "(" ws expr ws ")" | "-" factor
            number ::= [0-9]+ ("." [0-9]+)?
            ws     ::= [ \t]*
            """,
        ["char classes"] = "root ::= [a-zA-Z_] [a-zA-Z0-9_-]* [^\\n\\r\"]? [\\x41-\\x5A] [\\u00C0-\\u00FF] [😀-🙏] [-+] [a-] [^a-z0-9]\n",
        ["repetitions"] = "root ::= \"a\"* \"b\"+ \"c\"? \"d\"{3} \"e\"{2,} \"f\"{1,4} \"g\"{0,2} (\"h\" | \"i\"){ 1 , 3 } [0-9]{0,16}\n",
        ["repetition at llama.cpp's limit"] = "root ::= \"x\"{1999}\n",
        ["comments"] = """
            # a leading comment
            root ::= greeting name # after a rule
            # between rules

            greeting ::= "hi" | "hello" # another one
            name ::= " " [A-Z] [a-z]+ #no space after the hash
            """,
        ["escapes"] = "root ::= \"\\x41\\u00e9\\U0001F600\\t\\r\\n\\\\\\\"\\[\\]\" [\\]\\[\\\\\"] [\\x00-\\x1F]\n",
        ["multi-line alternatives"] = """
            root ::= "a" |
              "b" |
              ( "c"
                | "d"
                # a comment inside a group
              ) |
              ""
            """,
        ["CRLF line endings"] = "root ::= item\r\nitem ::= \"x\" | \"y\"\r\n",
        ["any char"] = "root ::= . \"x\" .* \"y\"\n",
        ["empty alternative"] = "root ::= \"a\" root |\n",
        ["names with digits and dashes, non-ASCII literals"] = "root ::= rule-1 rule-2\nrule-1 ::= \"é\"\nrule-2 ::= \"日本語\"\n",
        ["right recursion"] = "root ::= \"(\" root \")\" | \"x\"\n",
        ["nullable prefix without recursion"] = "root ::= ws item ws\nws ::= [ ]*\nitem ::= \"x\"\n",
        ["no trailing newline"] = "root ::= \"x\"",
        ["rule used before its definition, spaces around ::="] = "root::=later\nlater   ::=   \"x\"\n",
        ["JsonGrammar.AnyObject"] = JsonGrammar.AnyObject,
        ["JsonGrammar.FromSchema"] = FromSchema("""
            {
              "type": "object",
              "properties": {
                "name": { "type": "string", "minLength": 1, "maxLength": 40 },
                "age": { "type": "integer" },
                "tags": { "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 5 },
                "kind": { "enum": ["a", "b\n", 3, null] },
                "either": { "anyOf": [{ "type": "number" }, { "type": "boolean" }] },
                "child": { "$ref": "#" }
              },
              "required": ["name"]
            }
            """),
    };

    private static readonly Dictionary<string, (string Grammar, string Error, LlamaCpp LlamaCpp)> Rejected = new()
    {
        ["unbalanced ("] = ("root ::= (\"a\" | \"b\"\n", "line 2, column 1: expecting ')' to close the '(' at line 1, column 10", LlamaCpp.Refuses),
        ["unbalanced )"] = ("root ::= \"a\")\n", "line 1, column 13: unbalanced ')' in rule 'root'", LlamaCpp.Refuses),
        ["unterminated string"] = ("root ::= \"abc\n", "line 1, column 10: unterminated string literal", LlamaCpp.Refuses),
        ["unterminated class"] = ("root ::= [a-z\n", "line 1, column 10: unterminated character class", LlamaCpp.Refuses),
        ["stray ]"] = ("root ::= \"a\" ]\n", "line 1, column 14: unexpected text in rule 'root'", LlamaCpp.Refuses),
        ["undefined rule"] = ("root ::= value\n", "line 1, column 10: undefined rule 'value'", LlamaCpp.Refuses),
        ["undefined rules, all named"] = ("root ::= a b\n", "undefined rule 'a'; line 1, column 12: undefined rule 'b'", LlamaCpp.Refuses),
        ["missing root"] = ("expr ::= \"a\"\n", "the grammar has no 'root' rule", LlamaCpp.Refuses),
        ["left recursion"] = ("root ::= root \"a\" | \"a\"\n", "line 1, column 1: rule 'root' is left-recursive (root -> root)", LlamaCpp.Refuses),
        ["indirect left recursion"] = ("root ::= a\na ::= b \"x\"\nb ::= root | \"y\"\n", "is left-recursive (root -> a -> b -> root)", LlamaCpp.Refuses),
        ["left recursion after an empty rule"] = ("root ::= e root \"x\" | \"y\"\ne ::= | \"z\"\n", "rule 'root' is left-recursive (root -> root)", LlamaCpp.Refuses),
        ["left recursion through a nullable group"] = ("root ::= (\"x\"?) root \"y\" | \"z\"\n", "rule 'root' is left-recursive (root -> root)", LlamaCpp.Crashes),
        ["unknown escape"] = ("root ::= \"\\q\"\n", "line 1, column 11: unknown escape", LlamaCpp.Refuses),
        ["escaped dash (not known at this llama.cpp)"] = ("root ::= [a\\-z]\n", "line 1, column 12: unknown escape", LlamaCpp.Refuses),
        ["short hex escape"] = ("root ::= \"\\x4\"\n", "line 1, column 11: expecting 2 hex digits after '\\x'", LlamaCpp.Refuses),
        ["empty input"] = (string.Empty, "the grammar is empty", LlamaCpp.Accepts),
        ["only a comment"] = ("  \n# nothing here\n", "the grammar is empty", LlamaCpp.Refuses),
        ["junk after a rule"] = ("root ::= \"a\" @\n", "line 1, column 14: unexpected text in rule 'root'", LlamaCpp.Refuses),
        ["two rules on one line"] = ("root ::= \"a\" b ::= \"c\"\n", "line 1, column 16: unexpected text in rule 'root'", LlamaCpp.Refuses),
        ["= instead of ::="] = ("root = \"a\"\n", "line 1, column 6: expecting '::=' after the rule name 'root'", LlamaCpp.Refuses),
        ["underscore in a name"] = ("root ::= my_rule\nmy_rule ::= \"a\"\n", "line 1, column 12: unexpected text in rule 'root'", LlamaCpp.Refuses),
        ["alternative on the next line outside a group"] = ("root ::= \"a\"\n  | \"b\"\n", "line 2, column 3: expecting a rule name", LlamaCpp.Refuses),
        ["optional item repeated (left-recursive)"] = ("root ::= \"j\"?*\n", "a group or repetition in rule 'root' is left-recursive", LlamaCpp.Refuses),
        ["repetition of nothing"] = ("root ::= *\"a\"\n", "line 1, column 10: '*' must follow an item", LlamaCpp.Refuses),
        ["repetition of an empty string"] = ("root ::= \"\"+\n", "line 1, column 12: '+' must follow an item", LlamaCpp.Refuses),
        ["repetition count above 2000"] = ("root ::= \"a\"{2001}\n", "line 1, column 13: repetition counts above 2000", LlamaCpp.Refuses),
        ["repetition maximum above 2000"] = ("root ::= \"a\"{0,5000}\n", "line 1, column 13: repetition counts above 2000", LlamaCpp.Refuses),
        ["repetition count beyond 64 bits"] = ("root ::= \"a\"{99999999999999999999999}\n", "line 1, column 14: the number is too large", LlamaCpp.Refuses),
        ["repetition of 2000"] = ("root ::= \"a\"{2000}\n", "would make llama.cpp generate 2000 or more rules", LlamaCpp.Refuses),
        ["nested repetitions over the limit"] = ("root ::= ((\"a\"{0,50}){0,40})\n", "would make llama.cpp generate 2040 or more rules", LlamaCpp.Refuses),
        ["repetition without its closing brace"] = ("root ::= \"a\"{1,2\n", "line 1, column 17: expecting '}' to close the repetition", LlamaCpp.Refuses),
        ["repetition without a count"] = ("root ::= \"a\"{,3}\n", "line 1, column 14: expecting a repetition count after '{'", LlamaCpp.Refuses),
        ["repetition maximum below minimum"] = ("root ::= \"a\"{5,2}\n", "the repetition's maximum (2) is below its minimum (5)", LlamaCpp.Crashes),
        ["token id"] = ("root ::= \"a\" <[1]>\n", "line 1, column 14: token references (<[id]>, !<[id]>, <text>) are not accepted", LlamaCpp.Accepts),
        ["token id beyond the vocabulary (aborts at sampling)"] = ("root ::= <[600]>\n", "token references", LlamaCpp.Accepts),
        ["excluded token id"] = ("root ::= !<[2]>\n", "token references", LlamaCpp.Accepts),
        ["token by text"] = ("root ::= <s>\n", "token references", LlamaCpp.Accepts),
        ["token by text that is no token"] = ("root ::= <hello>\n", "token references", LlamaCpp.Refuses),
        ["! without a token"] = ("root ::= !\"a\"\n", "line 1, column 10: token references", LlamaCpp.Refuses),
        ["rule defined twice"] = ("root ::= \"a\"\nroot ::= \"b\"\n", "line 2, column 1: rule 'root' is defined twice (first at line 1, column 1)", LlamaCpp.Accepts),
        ["root redefined without its reference"] = ("a ::= root\na ::= \"x\"\n", "rule 'a' is defined twice", LlamaCpp.Crashes),
        ["root only referenced, reference removed by {0}"] = ("a ::= root{0}\n", "undefined rule 'root'", LlamaCpp.Crashes),
        ["empty class"] = ("root ::= [] \"a\"\n", "line 1, column 10: empty character class", LlamaCpp.Accepts),
        ["empty negated class"] = ("root ::= [^]\n", "line 1, column 10: empty character class", LlamaCpp.Accepts),
        ["reversed range"] = ("root ::= [z-a]\n", "line 1, column 11: the range U+007A-U+0061 is reversed", LlamaCpp.Accepts),
        ["NUL character"] = ("root ::= \"a\0\"\n", "line 1, column 12: the grammar contains a NUL character", LlamaCpp.Refuses),
        ["unpaired surrogate"] = ("root ::= \"\uD800\"\n", "line 1, column 11: the grammar contains an unpaired UTF-16 surrogate", LlamaCpp.Accepts),
        ["groups nested too deep"] = ("root ::= " + new string('(', 300) + "\"a\"" + new string(')', 300) + "\n", "groups are nested more than 256 deep", LlamaCpp.Accepts),
        ["too many elements once unrolled"] = ("root ::= \"" + new string('a', 600) + "\"{1999}\n", "expands to more than 1,048,576 elements", LlamaCpp.Accepts),
        ["exponential left-recursion check"] = (ExponentialGrammar(40), "too many ways to begin a rule", LlamaCpp.Crashes),
        ["left chain deeper than llama.cpp's stack"] = (LeftChainGrammar(3000), "starts a chain of more than 2500 rules", LlamaCpp.Crashes),
    };

    public static TheoryData<string> AcceptedNames => new(Accepted.Keys);

    public static TheoryData<string> RejectedNames => new(Rejected.Keys);


    [Theory]
    [MemberData(nameof(AcceptedNames))]
    public void Accepts_a_valid_grammar(string name)
    {
        var valid = GbnfValidator.TryValidate(Accepted[name], "root", out var error);

        Assert.True(valid, error);
        Assert.Empty(error);
    }

    [Theory]
    [MemberData(nameof(RejectedNames))]
    public void Refuses_an_invalid_grammar_saying_what_and_where(string name)
    {
        var (grammar, expected, _) = Rejected[name];

        var valid = GbnfValidator.TryValidate(grammar, "root", out var error);

        Assert.False(valid);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Checks_the_root_rule_it_is_given()
    {
        Assert.True(GbnfValidator.TryValidate("start ::= \"a\"\n", "start", out _));
        Assert.False(GbnfValidator.TryValidate("start ::= \"a\"\n", "root", out var error));
        Assert.Contains("no 'root' rule", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Accepts_the_longest_unbounded_chains_llama_cpp_can_check()
    {
        Assert.True(GbnfValidator.TryValidate(LeftChainGrammar(2000), "root", out var error), error);
    }

    /// <summary>The guard that matters: llama.cpp builds a sampler for every grammar the validator accepts.</summary>
    [Fact]
    public void LlamaCpp_builds_a_sampler_for_every_accepted_grammar()
    {
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(TestModels.Stories260K) { VocabOnly = true });
        foreach (var (name, grammar) in Accepted.Append(new("left chain of 2000", LeftChainGrammar(2000))))
        {
            Assert.True(GbnfValidator.TryValidate(grammar, "root", out var error), $"{name}: {error}");
            using var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
            chain.AddGrammar(weights.Vocab, grammar, "root");
            Assert.True(chain.Count == 1, $"llama.cpp did not take the grammar '{name}'.");
        }
    }

    [Fact]
    public void LlamaCpp_refuses_what_the_validator_refuses_as_broken()
    {
        using var llamaCpp = new LlamaCppGrammar();
        foreach (var (name, (grammar, _, _)) in Rejected.Where(pair => pair.Value.LlamaCpp == LlamaCpp.Refuses))
        {
            Assert.False(llamaCpp.Accepts(grammar), $"llama.cpp took '{name}'.");
        }
    }

    /// <summary>Documents where the validator is stricter than llama.cpp; a change in llama.cpp shows up here.</summary>
    [Fact]
    public void LlamaCpp_takes_the_mistakes_the_validator_refuses_on_purpose()
    {
        using var llamaCpp = new LlamaCppGrammar();
        foreach (var (name, (grammar, _, _)) in Rejected.Where(pair => pair.Value.LlamaCpp == LlamaCpp.Accepts))
        {
            Assert.True(llamaCpp.Accepts(grammar), $"llama.cpp refused '{name}'.");
        }
    }

    private static string FromSchema(string schema)
    {
        using var document = JsonDocument.Parse(schema);
        return JsonGrammar.FromSchema(document.RootElement);
    }

    /// <summary>Rules that each begin with the next one twice: llama.cpp's check walks 2^depth paths.</summary>
    private static string ExponentialGrammar(int depth)
    {
        var grammar = new StringBuilder("root ::= r0\n");
        for (var i = 0; i < depth; i++)
        {
            grammar.Append('r').Append(i).Append(" ::= r").Append(i + 1).Append(" \"a\" | r").Append(i + 1).Append(" \"b\"\n");
        }

        return grammar.Append('r').Append(depth).Append(" ::= \"x\"\n").ToString();
    }

    /// <summary>A chain of rules, each beginning with the next: llama.cpp's check recurses once per rule.</summary>
    private static string LeftChainGrammar(int length)
    {
        var grammar = new StringBuilder("root ::= r1\n");
        for (var i = 1; i < length; i++)
        {
            grammar.Append('r').Append(i).Append(" ::= r").Append(i + 1).Append(" \"a\"\n");
        }

        return grammar.Append('r').Append(length).Append(" ::= \"x\"\n").ToString();
    }
}
