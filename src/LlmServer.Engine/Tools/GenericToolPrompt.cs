using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Tools;

/// <summary>
/// The generic form's prompt, for templates that cannot render tools themselves: the tools' schemas and the
/// instruction to answer in JSON go into the system message (llama.cpp's generic format does the same), earlier
/// calls become the JSON the model is asked to write, and tool results become user messages. Works with any
/// template, the built-in ones and <c>plain</c> included.
/// </summary>
internal static class GenericToolPrompt
{
    private static readonly JsonWriterOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// The messages as the template should see them: tools offered (unless the choice is <c>none</c>) and tool
    /// history written out, so every template renders them.
    /// </summary>
    public static IReadOnlyList<ChatTurn> Apply(IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, ToolChoice choice, bool parallelCalls)
    {
        var hasHistory = messages.Any(m => m.ToolCalls is { Count: > 0 } || m.Role == "tool");
        var offer = tools.Count > 0 && choice.Mode != ToolChoiceMode.None;
        if (!offer && !hasHistory)
        {
            return messages;
        }

        // A tool result names its call; the function's name comes from that call when the client left it out.
        var callNames = messages.Where(m => m.ToolCalls is not null).SelectMany(m => m.ToolCalls!)
            .GroupBy(c => c.Id, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Name, StringComparer.Ordinal);
        var turns = new List<ChatTurn>(messages.Count + 1);
        var instruction = offer ? Instruction(tools, choice, parallelCalls) : null;
        var systemDone = instruction is null;
        foreach (var message in messages)
        {
            if (!systemDone && message.Role is "system" or "developer")
            {
                turns.Add(new ChatTurn("system", (message.Content ?? string.Empty) + "\n\n" + instruction));
                systemDone = true;
                continue;
            }

            if (!systemDone)
            {
                turns.Add(new ChatTurn("system", instruction));
                systemDone = true;
            }

            turns.Add(Rewrite(message, callNames));
        }

        return turns;
    }

    private static ChatTurn Rewrite(ChatTurn message, Dictionary<string, string> callNames)
    {
        if (message.Role == "tool")
        {
            return new ChatTurn("user", Json(Compact, writer =>
            {
                writer.WriteStartObject();
                writer.WriteStartObject("tool_response");
                if ((message.Name ?? (message.ToolCallId is { } callId ? callNames.GetValueOrDefault(callId) : null)) is { } name)
                {
                    writer.WriteString("tool", name);
                }

                if (message.ToolCallId is { } id)
                {
                    writer.WriteString("id", id);
                }

                writer.WriteString("content", message.Content ?? string.Empty);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }));
        }

        if (message.ToolCalls is not { Count: > 0 } calls)
        {
            return message;
        }

        // The call as the model is asked to write it, so a round trip reads like the model's own answer.
        return new ChatTurn(message.Role, Json(Compact, writer =>
        {
            writer.WriteStartObject();
            writer.WriteStartArray("tool_calls");
            foreach (var call in calls)
            {
                writer.WriteStartObject();
                writer.WriteString("name", call.Name);
                writer.WritePropertyName("arguments");
                WriteArguments(writer, call.Arguments);
                writer.WriteString("id", call.Id);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }))
        {
            ReasoningContent = message.ReasoningContent,
        };
    }

    private static string Instruction(IReadOnlyList<ToolDefinition> tools, ToolChoice choice, bool parallelCalls)
    {
        var offered = choice.Mode == ToolChoiceMode.Function ? tools.Where(t => t.Name == choice.FunctionName).ToList() : tools;
        // Compact JSON: small models have small contexts, and indentation costs tokens without telling them more.
        var builder = new StringBuilder("You can call any of the following tools to satisfy the user's requests: ");
        builder.Append(Json(Compact, writer =>
        {
            writer.WriteStartArray();
            foreach (var tool in offered)
            {
                WriteTool(writer, tool);
            }

            writer.WriteEndArray();
        }));
        var callKey = parallelCalls ? "tool_calls" : "tool_call";
        var example = parallelCalls
            ? "{\"tool_calls\": [{\"name\": \"tool_name\", \"arguments\": {\"arg1\": \"some_value\"}, \"id\": \"call_1\"}]}"
            : "{\"tool_call\": {\"name\": \"tool_name\", \"arguments\": {\"arg1\": \"some_value\"}}}";
        builder.Append("\n\nExample tool call syntax:\n\n").Append(example).Append("\n\n");
        builder.Append(choice.Mode == ToolChoiceMode.Auto
            ? $"Respond in JSON format, either with `{callKey}` (a request to call tools) or with `response` reply to the user's request"
            : $"Respond in JSON format with `{callKey}` (a request to call tools)");
        return builder.ToString();
    }

    private static void WriteTool(Utf8JsonWriter writer, ToolDefinition tool)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "function");
        writer.WriteStartObject("function");
        writer.WriteString("name", tool.Name);
        if (tool.Description is { } description)
        {
            writer.WriteString("description", description);
        }

        if (tool.Parameters is { } parameters)
        {
            writer.WritePropertyName("parameters");
            parameters.WriteTo(writer);
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>Arguments are JSON text; text that does not parse is written as a string rather than lost.</summary>
    private static void WriteArguments(Utf8JsonWriter writer, string arguments)
    {
        try
        {
            using var document = JsonDocument.Parse(arguments);
            document.RootElement.WriteTo(writer);
        }
        catch (JsonException)
        {
            writer.WriteStringValue(arguments);
        }
    }

    private static string Json(JsonWriterOptions options, Action<Utf8JsonWriter> write)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, options))
        {
            write(writer);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
