namespace LlmServer.Templating.Chat;

/// <summary>Template families whose rendering llama.cpp adjusts specially, told apart by the template's source.</summary>
internal sealed partial record TemplateFamily(bool IsGptOss, bool IsMinistral3, bool ToolResultsOnAssistant, bool IsGemma4)
{
    public static TemplateFamily Detect(string source) => new(
        IsGptOss: source.Contains("<|channel|>", StringComparison.Ordinal),
        ToolResultsOnAssistant: source.Contains("['tool_responses']", StringComparison.Ordinal) && !ToolRoleTest().IsMatch(source),
        IsGemma4: source.Contains("<|turn>model", StringComparison.Ordinal),
        IsMinistral3: source.Contains("[SYSTEM_PROMPT]", StringComparison.Ordinal)
            && source.Contains("[TOOL_CALLS]", StringComparison.Ordinal)
            && source.Contains("[ARGS]", StringComparison.Ordinal)
            && !source.Contains("[CALL_ID]", StringComparison.Ordinal));

    // A template that compares a role with 'tool' renders tool messages itself.
    [System.Text.RegularExpressions.GeneratedRegex(@"role['""]?\]?\s*[!=]=\s*['""]tool['""]")]
    private static partial System.Text.RegularExpressions.Regex ToolRoleTest();
}

/// <summary>
/// llama.cpp's patches to two published templates whose own checks refuse requests that llama.cpp sends: gpt-oss
/// refusing channel markers in content, and Mistral refusing an assistant message with empty content.
/// </summary>
internal static class CompatibilityPatches
{
    public static string Apply(string source)
    {
        if (source.Contains("<|channel|>", StringComparison.Ordinal) && source.Contains("in message.content or", StringComparison.Ordinal))
        {
            source = source.Replace(
                "{%- if \"<|channel|>analysis<|message|>\" in message.content or \"<|channel|>final<|message|>\" in message.content %}",
                "{%- if false %}",
                StringComparison.Ordinal);
        }

        if (source.Contains("[TOOL_CALLS]", StringComparison.Ordinal) && source.Contains("if (message['content'] is none or", StringComparison.Ordinal))
        {
            source = source.Replace(
                "{%- if (message['content'] is none or message['content'] == '' or message['content']|length == 0) and (message['tool_calls'] is not defined or message['tool_calls'] is none or message['tool_calls']|length == 0) %}",
                "{%- if false %}",
                StringComparison.Ordinal);
        }

        return source;
    }
}

/// <summary>The messages and tools as llama.cpp hands them to a template.</summary>
internal static class ChatTemplateAdjustments
{
    public static JinjaList BuildMessages(IReadOnlyList<ChatTemplateMessage> input, ChatTemplateCapabilities caps, TemplateFamily family)
    {
        var onlyTyped = !caps.SupportsStringContent && caps.SupportsTypedContent;
        var messages = new JinjaList();
        foreach (var message in input)
        {
            var role = message.Role == "developer" && !family.IsGptOss ? "system" : message.Role;
            var dict = new JinjaDict();
            dict.Set("role", role);
            var content = message.Content ?? string.Empty;
            dict.Set("content", onlyTyped ? TextBlocks(content) : content);
            if (!string.IsNullOrEmpty(message.ReasoningContent))
            {
                dict.Set("reasoning_content", message.ReasoningContent);
            }

            if (!string.IsNullOrEmpty(message.Name))
            {
                dict.Set("name", message.Name);
            }

            if (!string.IsNullOrEmpty(message.ToolCallId))
            {
                dict.Set("tool_call_id", message.ToolCallId);
            }

            if (message.ToolCalls is { Count: > 0 } calls)
            {
                var list = new JinjaList();
                foreach (var call in calls)
                {
                    var function = new JinjaDict();
                    function.Set("name", call.Name);
                    function.Set("arguments", caps.SupportsObjectArguments ? ParseArguments(call.Arguments) : call.Arguments);
                    var toolCall = new JinjaDict();
                    toolCall.Set("type", "function");
                    toolCall.Set("function", function);
                    if (!string.IsNullOrEmpty(call.Id))
                    {
                        toolCall.Set("id", call.Id);
                    }

                    list.Add(toolCall);
                }

                dict.Set("tool_calls", list);
                if (family.IsGptOss && !string.IsNullOrEmpty(message.ReasoningContent))
                {
                    dict.Set("thinking", message.ReasoningContent);
                }
            }

            messages.Add(dict);
        }

        if (!caps.SupportsSystemRole)
        {
            FoldSystemMessage(messages);
        }

        if (family.ToolResultsOnAssistant)
        {
            messages = MoveToolResultsOntoAssistant(messages);
        }

        return family.IsMinistral3
            ? new JinjaList(messages.Cast<JinjaDict>().Select(m => (object?)(m["role"] is "system" or "assistant" ? Ministral3Blocks(m) : m)))
            : messages;
    }

    public static JinjaList BuildTools(IReadOnlyList<ChatTemplateTool> tools)
    {
        var list = new JinjaList();
        foreach (var tool in tools)
        {
            var function = new JinjaDict();
            function.Set("name", tool.Name);
            function.Set("description", tool.Description ?? string.Empty);
            function.Set("parameters", string.IsNullOrWhiteSpace(tool.ParametersJson) ? new JinjaDict() : JinjaJson.Parse(tool.ParametersJson));
            var entry = new JinjaDict();
            entry.Set("type", "function");
            entry.Set("function", function);
            list.Add(entry);
        }

        return list;
    }

    // The first system message joins the next message's content; alone, it is dropped.
    private static void FoldSystemMessage(JinjaList messages)
    {
        if (messages.Count == 0 || messages[0] is not JinjaDict first || !PyOps.AreEqual(first["role"], "system"))
        {
            return;
        }

        if (messages.Count > 1 && messages[1] is JinjaDict second)
        {
            second.Set("content", PyOps.Str(first["content"]) + "\n" + PyOps.Str(second["content"]));
        }

        messages.RemoveAt(0);
    }

    // Gemma 4 (interleaved): an assistant turn with calls takes the following tool results as tool_responses
    // ({name, response}, the response parsed as JSON where it is JSON) and the assistant's answer after them.
    private static JinjaList MoveToolResultsOntoAssistant(JinjaList messages)
    {
        var result = new JinjaList();
        var i = 0;
        while (i < messages.Count)
        {
            var message = (JinjaDict)messages[i]!;
            if (!PyOps.AreEqual(message["role"], "assistant") || message["tool_calls"] is not JinjaList { Count: > 0 } calls)
            {
                result.Add(message);
                i++;
                continue;
            }

            var merged = new JinjaDict();
            merged.Set("role", "assistant");
            merged.Set("tool_calls", calls);
            var responses = new JinjaList();
            i++;
            while (i < messages.Count && messages[i] is JinjaDict tool && PyOps.AreEqual(tool["role"], "tool"))
            {
                var name = responses.Count < calls.Count && calls[responses.Count] is JinjaDict call && call["function"] is JinjaDict function
                    ? PyOps.Str(function["name"])
                    : string.Empty;
                if (name.Length == 0)
                {
                    name = PyOps.Str(tool["tool_call_id"]);
                }

                var response = new JinjaDict();
                response.Set("name", name);
                response.Set("response", ParseOrKeep(tool["content"]));
                responses.Add(response);
                i++;
            }

            if (responses.Count > 0)
            {
                merged.Set("tool_responses", responses);
            }

            if (i < messages.Count && messages[i] is JinjaDict next && PyOps.AreEqual(next["role"], "assistant")
                && next["tool_calls"] is not JinjaList { Count: > 0 } && PyOps.Truthy(next["content"]))
            {
                merged.Set("content", next["content"]);
                i++;
            }

            if (message["reasoning_content"] is string reasoning)
            {
                merged.Set("reasoning_content", reasoning);
            }

            result.Add(merged);
        }

        return result;
    }

    private static object? ParseOrKeep(object? content)
    {
        if (content is not string text)
        {
            return content;
        }

        try
        {
            return JinjaJson.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
            return text;
        }
    }

    private static object? ParseArguments(string arguments)
    {
        try
        {
            return JinjaJson.Parse(arguments);
        }
        catch (System.Text.Json.JsonException e)
        {
            // The reason without System.Text.Json's trailer ("LineNumber: 0 | BytePositionInLine: 1."), internal and zero-based.
            var trailer = e.Message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
            var reason = (trailer < 0 ? e.Message : e.Message[..trailer]).TrimEnd().TrimEnd('.');
            throw new FormatException($"Failed to parse tool call arguments as JSON: {reason}.", e);
        }
    }

    internal static JinjaList TextBlocks(string text)
    {
        var block = new JinjaDict();
        block.Set("type", "text");
        block.Set("text", text);
        return [block];
    }

    // Ministral 3's template reads system and assistant content as typed blocks.
    private static JinjaDict Ministral3Blocks(JinjaDict message)
    {
        var blocks = new JinjaList();
        if (message["reasoning_content"] is string reasoning)
        {
            var thinking = new JinjaDict();
            thinking.Set("type", "thinking");
            thinking.Set("thinking", reasoning);
            blocks.Add(thinking);
        }

        switch (message["content"])
        {
            case string text:
                blocks.AddRange(TextBlocks(text));
                break;
            case JinjaList list:
                blocks.AddRange(list);
                break;
        }

        var adjusted = message.Copy();
        adjusted.Set("content", blocks);
        adjusted.Remove("reasoning_content");
        return adjusted;
    }
}
