namespace LlmServer.Templating.Chat;

/// <summary>
/// What a chat template supports, found as llama.cpp finds it: by rendering probe conversations and looking for
/// what reached the prompt.
/// </summary>
public sealed record ChatTemplateCapabilities
{
    private const string SystemNeedle = "System message needle";
    private const string ToolNeedle = "tool_needle_fn";
    private const string FirstCallNeedle = "call_needle_fn_1";
    private const string SecondCallNeedle = "call_needle_fn_2";
    private const string ArgumentNeedle = "argument_needle";
    private const string ContentNeedle = "content needle";


    /// <summary>A <c>system</c> message reaches the prompt (else llama.cpp folds it into the first user message).</summary>
    public bool SupportsSystemRole { get; init; } = true;

    /// <summary>The offered <c>tools</c> reach the prompt.</summary>
    public bool SupportsTools { get; init; } = true;

    /// <summary>An assistant message's <c>tool_calls</c> reach the prompt.</summary>
    public bool SupportsToolCalls { get; init; } = true;

    /// <summary>A second call in one assistant message reaches the prompt (probed apart: Llama 3.x refuses it).</summary>
    public bool SupportsParallelToolCalls { get; init; } = true;

    /// <summary>The template renders tool-call arguments given as an object (they are passed parsed, not as JSON text).</summary>
    public bool SupportsObjectArguments { get; init; }

    /// <summary>The template renders message content given as a string.</summary>
    public bool SupportsStringContent { get; init; } = true;

    /// <summary>The template renders message content given as typed blocks (<c>[{"type": "text", ...}]</c>).</summary>
    public bool SupportsTypedContent { get; init; }

    /// <summary>An assistant message's <c>reasoning_content</c> reaches the prompt.</summary>
    public bool SupportsPreserveReasoning { get; init; }

    /// <summary>
    /// The template opens a reasoning block that <c>enable_thinking</c> switches (a tag such as <c>&lt;think&gt;</c>
    /// appears or goes). llama.cpp renders <c>enable_thinking</c> false for a template without one.
    /// </summary>
    public bool SupportsThinking { get; init; }

    internal static ChatTemplateCapabilities Probe(JinjaTemplate template)
    {
        var stringContent = TryRender(template, [Message("user", ContentNeedle)], null);
        var typedContent = TryRender(template, [Message("user", ChatTemplateAdjustments.TextBlocks(ContentNeedle))], null);
        var system = TryRender(template, [Message("system", SystemNeedle), Message("user", "User message")], []);
        // Three probes, as llama.cpp's: tools offered to one user message, one call in the history, two calls in one
        // message. A template that refuses parallel calls (Llama 3.x takes one per message) still renders tools and
        // single calls natively. A template that renders object arguments gets them parsed; one that fails on them
        // (string concatenation) keeps the JSON text.
        var offered = TryRender(template, [Message("user", "User message")], ProbeTools());
        var withObjectArguments = TryRender(template, ToolConversation(objectArguments: true, parallel: false), ProbeTools());
        var oneCall = withObjectArguments ?? TryRender(template, ToolConversation(objectArguments: false, parallel: false), ProbeTools());
        var twoCalls = TryRender(template, ToolConversation(objectArguments: withObjectArguments is not null, parallel: true), ProbeTools());
        var reasoning = TryRender(
            template,
            [Message("user", "User message"), Message("assistant", "Assistant message", ("reasoning_content", "reasoning needle")), Message("user", "User message")],
            []);
        var thinking = TryRender(template, [Message("user", "User message")], null, enableThinking: true);
        var notThinking = TryRender(template, [Message("user", "User message")], null, enableThinking: false);
        return new ChatTemplateCapabilities
        {
            SupportsThinking = thinking is not null && notThinking is not null && SwitchesATag(thinking, notThinking),
            SupportsStringContent = stringContent is not null,
            SupportsTypedContent = typedContent?.Contains(ContentNeedle, StringComparison.Ordinal) == true,
            SupportsSystemRole = system?.Contains(SystemNeedle, StringComparison.Ordinal) == true,
            SupportsTools = offered?.Contains(ToolNeedle, StringComparison.Ordinal) == true,
            SupportsToolCalls = oneCall?.Contains(FirstCallNeedle, StringComparison.Ordinal) == true,
            SupportsParallelToolCalls = twoCalls?.Contains(SecondCallNeedle, StringComparison.Ordinal) == true,
            SupportsObjectArguments = withObjectArguments is not null,
            SupportsPreserveReasoning = reasoning?.Contains("reasoning needle", StringComparison.Ordinal) == true,
        };
    }

    // Whether the two renderings differ in a span holding markup (a tag), not only in words.
    private static bool SwitchesATag(string a, string b)
    {
        var prefix = 0;
        while (prefix < a.Length && prefix < b.Length && a[prefix] == b[prefix])
        {
            prefix++;
        }

        var suffix = 0;
        while (suffix < a.Length - prefix && suffix < b.Length - prefix && a[^(suffix + 1)] == b[^(suffix + 1)])
        {
            suffix++;
        }

        // One character more on each side catches a tag that only gained or lost a character ("<think>" / "</think>").
        bool HasTag(string text)
        {
            var from = Math.Max(0, prefix - 1);
            var to = Math.Min(text.Length, text.Length - suffix + 1);
            return to > from && text.AsSpan(from, to - from).IndexOfAny("<>[]") >= 0;
        }

        return !string.Equals(a, b, StringComparison.Ordinal) && (HasTag(a) || HasTag(b));
    }

    private static string? TryRender(JinjaTemplate template, JinjaList messages, JinjaList? tools, bool enableThinking = true)
    {
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["enable_thinking"] = enableThinking,
            ["thinking"] = enableThinking,
            ["messages"] = messages,
            ["tools"] = tools,
            ["bos_token"] = string.Empty,
            ["eos_token"] = string.Empty,
            ["add_generation_prompt"] = true,
        };
        try
        {
            return template.Render(variables);
        }
        catch (TemplateException)
        {
            return null;
        }
    }

    private static JinjaList ToolConversation(bool objectArguments, bool parallel)
    {
        JinjaDict Call(string id, string name)
        {
            var arguments = new JinjaDict();
            arguments.Set(ArgumentNeedle, "value");
            var function = new JinjaDict();
            function.Set("name", name);
            function.Set("arguments", objectArguments ? arguments : JinjaJson.Serialize(arguments));
            var call = new JinjaDict();
            call.Set("id", id);
            call.Set("type", "function");
            call.Set("function", function);
            return call;
        }

        return
        [
            Message("user", "User message"),
            Message("assistant", "Assistant message", ("tool_calls", parallel
                ? new JinjaList { Call("call00001", FirstCallNeedle), Call("call00002", SecondCallNeedle) }
                : new JinjaList { Call("call00001", FirstCallNeedle) })),
            Message("tool", "Tool response", ("tool_call_id", "call00001")),
            Message("assistant", "The tool response was 'tool response'"),
            Message("user", "User message"),
        ];
    }

    private static JinjaList ProbeTools()
    {
        var argument = new JinjaDict();
        argument.Set("type", "string");
        argument.Set("description", "Arg description");
        var properties = new JinjaDict();
        properties.Set("arg", argument);
        var parameters = new JinjaDict();
        parameters.Set("type", "object");
        parameters.Set("properties", properties);
        parameters.Set("required", new JinjaList { "arg" });
        var function = new JinjaDict();
        function.Set("name", ToolNeedle);
        function.Set("description", "Tool description");
        function.Set("parameters", parameters);
        var tool = new JinjaDict();
        tool.Set("type", "function");
        tool.Set("function", function);
        return [tool];
    }

    private static JinjaDict Message(string role, object content, params (string Key, object? Value)[] extra)
    {
        var message = new JinjaDict();
        message.Set("role", role);
        message.Set("content", content);
        foreach (var (key, value) in extra)
        {
            message.Set(key, value);
        }

        return message;
    }
}
