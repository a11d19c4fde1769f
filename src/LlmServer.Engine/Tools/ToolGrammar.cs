using System.Text.Json;
using System.Text.RegularExpressions;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tools;

/// <summary>
/// A grammar that makes calls valid by construction: the family's call syntax around each tool's arguments, which
/// follow the tool's JSON schema (<see cref="JsonGrammar"/>). <see cref="TriggerPatterns"/> and
/// <see cref="TriggerWords"/>, when any, make it lazy (llama.cpp's lazy grammar): free text until the generated text
/// matches a pattern, constrained from the pattern's first capture group on, or until a call's marker comes,
/// constrained from the marker on.
/// </summary>
internal sealed partial record ToolGrammar(string Grammar, IReadOnlyList<string> TriggerPatterns, IReadOnlyList<string> TriggerWords)
{
    /// <summary>
    /// The grammar for <paramref name="choice"/>: none for <c>none</c>; for <c>auto</c> a lazy one (a call once
    /// the model starts one); for <c>required</c> or a named function, calls from the first token.
    /// </summary>
    /// <exception cref="ToolSchemaException">A tool's schema cannot be enforced; the message names the tool.</exception>
    /// <exception cref="ArgumentException">The tools together make a grammar llama.cpp cannot take.</exception>
    public static ToolGrammar? Build(ToolCallFormat format, IReadOnlyList<ToolDefinition> tools, ToolChoice choice, bool parallelCalls)
    {
        if (choice.Mode == ToolChoiceMode.None || tools.Count == 0)
        {
            return null;
        }

        var offered = choice.Mode == ToolChoiceMode.Function ? tools.Where(t => t.Name == choice.FunctionName).ToList() : tools;
        var lazy = choice.Mode == ToolChoiceMode.Auto;

        var builder = new JsonGrammar.Builder();
        var arguments = new List<(string Name, string Expression)>();
        foreach (var tool in offered)
        {
            try
            {
                var expression = tool.Parameters is { } schema ? builder.AddSchema(schema, "args-" + tool.Name) : "object";
                arguments.Add((tool.Name, expression));
            }
            catch (ArgumentException e)
            {
                throw new ToolSchemaException(IndexOf(tools, tool), $"The parameters of tool '{tool.Name}' cannot be enforced: {e.Message}", e);
            }
        }

        var call = format switch
        {
            ToolCallFormat.Mistral => builder.AddRule("tool-call", Alternatives(arguments, a => Str(ToolCallMarkers.ToolCalls + a.Name) + " " + MistralCallId + " " + Str(ToolCallMarkers.Args) + " " + a.Expression)),
            ToolCallFormat.FunctionaryV32 => builder.AddRule("tool-call", Alternatives(arguments, a => Str(a.Name + "\n") + " " + a.Expression)),
            ToolCallFormat.Llama3 => builder.AddRule("tool-call", Alternatives(arguments, a => CallObject(a.Name, "parameters", a.Expression, id: false))),
            ToolCallFormat.MistralNemo => builder.AddRule("tool-call", Alternatives(arguments, a => CallObject(a.Name, "arguments", a.Expression, id: true))),
            _ => builder.AddRule("tool-call", Alternatives(arguments, a => CallObject(a.Name, "arguments", a.Expression, id: false))),
        };

        var calls = format switch
        {
            ToolCallFormat.Hermes => Repeat(Str(ToolCallMarkers.HermesOpen + "\n") + " " + call + " " + Str("\n" + ToolCallMarkers.HermesClose), Str("\n"), parallelCalls),
            ToolCallFormat.Mistral => Repeat(call, null, parallelCalls),
            ToolCallFormat.MistralNemo => Str(ToolCallMarkers.ToolCalls) + " \"[\" " + Repeat(call, "\",\" ws", parallelCalls) + " \"]\"",
            ToolCallFormat.FunctionaryV32 => Repeat(call, Str(ToolCallMarkers.Recipient), parallelCalls),

            // Llama 3 writes one JSON call a message: its templates raise on two (ToolCalling holds them to one a turn).
            ToolCallFormat.Llama3 => (lazy ? Str(ToolCallMarkers.PythonTag) + "? " : string.Empty) + call,
            _ => parallelCalls
                ? "\"{\" ws " + Str("\"tool_calls\"") + " ws \":\" ws \"[\" ws " + Repeat(call, "\",\" ws", parallel: true) + " ws \"]\" ws \"}\""
                : "\"{\" ws " + Str("\"tool_call\"") + " ws \":\" ws " + call + " ws \"}\"",
        };

        if (lazy && format == ToolCallFormat.Generic)
        {
            // The generic form answers in JSON either way: a call, or {"response": "..."}.
            calls = "( " + calls + " ) | \"{\" ws " + Str("\"response\"") + " ws \":\" ws string ws \"}\"";
        }

        var grammar = JsonGrammar.Checked(builder.Render(calls));
        return lazy ? new ToolGrammar(grammar, Triggers(format, offered), Markers(format)) : new ToolGrammar(grammar, [], []);
    }

    /// <summary>
    /// A marker as a pattern (see <see cref="WholeText"/>), for where it cannot be a token: anywhere after text. Every
    /// character but letters, digits and underscores escaped, which ECMAScript reads as itself.
    /// </summary>
    public static string WordPattern(string word) => @"[\s\S]*?(" + NonWordCharacter().Replace(word, @"\$0") + ")";

    /// <summary>
    /// The patterns as llama.cpp takes them, each matched against all the text generated so far: it searches for a
    /// pattern anywhere unless it is written <c>^...$</c>, which the whole text must match (its <c>PATTERN_FULL</c>
    /// triggers). Ours are matched from the answer's start, after <paramref name="beforeAnswer"/> (a reasoning block,
    /// see <see cref="Reasoning.ReasoningStage.AnchorTriggers"/>), with the text after the call's start allowed. Each
    /// pattern's first capture group stays first.
    /// </summary>
    public static IReadOnlyList<string> WholeText(IReadOnlyList<string> patterns, string beforeAnswer = "") =>
        patterns.Select(pattern => "^(?:" + beforeAnswer + pattern + @")[\s\S]*$").ToList();

    /// <summary>
    /// Matched from the answer's start (see <see cref="WholeText"/>): a bare JSON call only where the answer starts,
    /// as the parser reads one (as llama.cpp's Llama 3.x handler anchored its own); Functionary's tool name where the
    /// answer starts or after its <c>&gt;&gt;&gt;</c>. Each capture is the opening of a call, and a pattern matches
    /// at the first token that completes one; llama.cpp feeds the grammar from the capture to the end of that token
    /// (<see cref="WholeText"/> lets text follow the capture), so the rest of that token must be text a call may
    /// continue with (fed anything the grammar does not accept, llama.cpp would abort the process).
    /// </summary>
    private static List<string> Triggers(ToolCallFormat format, IEnumerable<ToolDefinition> tools) => format switch
    {
        ToolCallFormat.Hermes or ToolCallFormat.Mistral or ToolCallFormat.MistralNemo => [],
        ToolCallFormat.FunctionaryV32 => [@"(?:[\s\S]*?>>>)?((?:" + string.Join("|", tools.Select(t => Regex.Escape(t.Name))) + @")\n)"],
        _ => [@"\s*(\{)"],
    };

    /// <summary>
    /// The marker that opens a call anywhere in the answer, where the grammar starts with it: functionary's starts at
    /// the tool's name (its generation prompt ends with the marker, and a pattern wakes it).
    /// </summary>
    private static List<string> Markers(ToolCallFormat format) =>
        format != ToolCallFormat.FunctionaryV32 && ToolCallMarkers.Opening(format) is { } opening ? [opening] : [];

    /// <summary>The model's own id for a call: nine alphanumerics (<see cref="ShortToolCallIds"/>).</summary>
    private static string ShortId => "[a-zA-Z0-9]{" + ShortToolCallIds.Length + "}";

    /// <summary>Mistral Small 3.2's <c>[CALL_ID]id</c> before <c>[ARGS]</c>: optional, as templates without it never render one.</summary>
    private static string MistralCallId => "( " + Str(ToolCallMarkers.CallId) + " " + ShortId + " )?";

    private static string CallObject(string name, string argumentsKey, string arguments, bool id)
    {
        var body = "\"{\" ws " + Str("\"name\"") + " ws \":\" ws " + Str(JsonSerializer.Serialize(name)) + " ws \",\" ws "
            + Str("\"" + argumentsKey + "\"") + " ws \":\" ws " + arguments;
        if (id)
        {
            body += " ws \",\" ws " + Str("\"id\"") + " ws \":\" ws \"\\\"\" " + ShortId + " \"\\\"\"";
        }

        return body + " ws \"}\"";
    }

    private static string Alternatives(List<(string Name, string Expression)> tools, Func<(string Name, string Expression), string> render) =>
        string.Join(" | ", tools.Select(t => "( " + render(t) + " )"));

    private static string Repeat(string item, string? separator, bool parallel) =>
        parallel ? item + " ( " + (separator is null ? string.Empty : separator + " ") + item + " )*" : item;

    private static string Str(string text) => JsonGrammar.Literal(text);

    [GeneratedRegex("[^A-Za-z0-9_]")]
    private static partial Regex NonWordCharacter();

    private static int IndexOf(IReadOnlyList<ToolDefinition> tools, ToolDefinition tool)
    {
        for (var i = 0; i < tools.Count; i++)
        {
            if (ReferenceEquals(tools[i], tool))
            {
                return i;
            }
        }

        return -1;
    }
}

/// <summary>The schema of the tool at <see cref="ToolIndex"/> (in the request's list) cannot be enforced.</summary>
internal sealed class ToolSchemaException(int toolIndex, string message, Exception innerException) : ArgumentException(message, innerException)
{
    public int ToolIndex { get; } = toolIndex;
}
