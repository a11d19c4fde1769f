using System.Globalization;
using System.Text;

namespace LlmServer.Templating;

/// <summary>What a render may reach beyond its variables: the clock behind <c>strftime_now</c>.</summary>
internal sealed record RenderEnvironment(TimeProvider Clock);

/// <summary>
/// A parsed Jinja template. Parse once with <see cref="Parse"/>; <see cref="Render"/> is safe to call from many
/// threads at once (a render keeps its state to itself).
/// </summary>
public sealed class JinjaTemplate
{
    private readonly IReadOnlyList<Node> _body;

    private JinjaTemplate(string source, string normalized, IReadOnlyList<Node> body)
    {
        Source = source;
        NormalizedSource = normalized;
        _body = body;
    }

    /// <summary>The template text as given.</summary>
    public string Source { get; }

    internal string NormalizedSource { get; }

    /// <summary>Parses a template; a syntax error is a <see cref="TemplateException"/> with its line and column.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var (tokens, normalized) = Lexer.Tokenize(source);
        return new JinjaTemplate(source, normalized, Parser.Parse(tokens, normalized));
    }

    /// <summary>
    /// Renders with the given variables (values: null, bool, long, double, string, <see cref="JinjaList"/>,
    /// <see cref="JinjaDict"/>, or <see cref="JinjaFunction"/>). <paramref name="clock"/> feeds
    /// <c>strftime_now</c> (the system clock when null).
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var environment = new RenderEnvironment(clock ?? TimeProvider.System);
        var globals = new Scope(null);
        foreach (var (name, function) in Globals(environment))
        {
            globals.Set(name, function);
        }

        var scope = new Scope(globals);
        foreach (var (name, value) in variables)
        {
            scope.Set(name, value);
        }

        var output = new StringBuilder();
        new Interpreter(NormalizedSource, environment).Execute(_body, scope, output);
        return output.ToString();
    }

    private static IEnumerable<(string, JinjaFunction)> Globals(RenderEnvironment environment)
    {
        yield return ("raise_exception", new JinjaFunction("raise_exception", args =>
            throw new JinjaError(PyOps.Str(args.Get(0, "message", "raise_exception called")), raised: true)));
        yield return ("range", new JinjaFunction("range", Range));
        yield return ("namespace", new JinjaFunction("namespace", args =>
        {
            var ns = new JinjaNamespace();
            if (args.Positional.Count > 0 && args.Positional[0] is JinjaDict initial)
            {
                foreach (var entry in initial.Entries)
                {
                    ns.Set(entry.Key, entry.Value);
                }
            }

            foreach (var (key, value) in args.Keywords)
            {
                ns.Set(key, value);
            }

            return ns;
        }));
        yield return ("dict", new JinjaFunction("dict", args =>
        {
            var dict = args.Positional.Count > 0 && args.Positional[0] is JinjaDict initial ? initial.Copy() : new JinjaDict();
            if (args.Positional.Count > 0 && args.Positional[0] is JinjaList pairs)
            {
                foreach (var pair in pairs.OfType<JinjaList>())
                {
                    dict.Set(pair[0]!, pair[1]);
                }
            }

            foreach (var (key, value) in args.Keywords)
            {
                dict.Set(key, value);
            }

            return dict;
        }));
        yield return ("strftime_now", new JinjaFunction("strftime_now", args =>
            Strftime.Format(environment.Clock.GetLocalNow().DateTime, PyOps.Str(args.Get(0, "format")))));
        yield return ("len", new JinjaFunction("len", args => PyOps.Length(args.Get(0, "obj"))));
    }

    private static object? Range(CallArguments args)
    {
        long Arg(int i) => args.Positional[i] switch
        {
            long l => l,
            bool b => b ? 1 : 0,
            var other => throw new JinjaError($"'{PyOps.TypeName(other)}' object cannot be interpreted as an integer"),
        };
        var (start, stop, step) = args.Positional.Count switch
        {
            1 => (0L, Arg(0), 1L),
            2 => (Arg(0), Arg(1), 1L),
            3 => (Arg(0), Arg(1), Arg(2)),
            _ => throw new JinjaError("range expected 1 to 3 arguments"),
        };
        if (step == 0)
        {
            throw new JinjaError("range() arg 3 must not be zero");
        }

        var result = new JinjaList();
        for (var i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            result.Add(i);
        }

        return result;
    }
}

/// <summary>C's <c>strftime</c> for the directives templates use, in the invariant (C) locale.</summary>
internal static class Strftime
{
    public static string Format(DateTime time, string format)
    {
        var builder = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                builder.Append(format[i]);
                continue;
            }

            var c = format[++i];
            var culture = CultureInfo.InvariantCulture;
            builder.Append(c switch
            {
                'Y' => time.Year.ToString("0000", culture),
                'y' => (time.Year % 100).ToString("00", culture),
                'm' => time.Month.ToString("00", culture),
                'd' => time.Day.ToString("00", culture),
                'e' => time.Day.ToString(culture).PadLeft(2),
                '-' when i + 1 < format.Length => Unpadded(time, format[++i]),
                'H' => time.Hour.ToString("00", culture),
                'I' => (((time.Hour + 11) % 12) + 1).ToString("00", culture),
                'M' => time.Minute.ToString("00", culture),
                'S' => time.Second.ToString("00", culture),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'b' or 'h' => time.ToString("MMM", culture),
                'B' => time.ToString("MMMM", culture),
                'a' => time.ToString("ddd", culture),
                'A' => time.ToString("dddd", culture),
                'j' => time.DayOfYear.ToString("000", culture),
                'F' => time.ToString("yyyy-MM-dd", culture),
                'T' => time.ToString("HH:mm:ss", culture),
                'D' => time.ToString("MM/dd/yy", culture),
                'w' => ((int)time.DayOfWeek).ToString(culture),
                'u' => (time.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)time.DayOfWeek).ToString(culture),
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                _ => "%" + c,
            });
        }

        return builder.ToString();
    }

    private static string Unpadded(DateTime time, char c) => c switch
    {
        'd' => time.Day.ToString(CultureInfo.InvariantCulture),
        'm' => time.Month.ToString(CultureInfo.InvariantCulture),
        'H' => time.Hour.ToString(CultureInfo.InvariantCulture),
        'I' => (((time.Hour + 11) % 12) + 1).ToString(CultureInfo.InvariantCulture),
        'M' => time.Minute.ToString(CultureInfo.InvariantCulture),
        'S' => time.Second.ToString(CultureInfo.InvariantCulture),
        'j' => time.DayOfYear.ToString(CultureInfo.InvariantCulture),
        _ => "%-" + c,
    };
}
