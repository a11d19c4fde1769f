using System.Text.Json;
using LlmServer.Templating.Chat;

namespace LlmServer.Templating.Tests;

/// <summary>Reads a fixture case (an OpenAI chat request body) into the renderer's request.</summary>
internal static class FixtureCases
{
    public static ChatTemplateRequest Load(string json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var messages = new List<ChatTemplateMessage>();
        foreach (var message in root.GetProperty("messages").EnumerateArray())
        {
            var content = message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            List<ChatTemplateToolCall>? calls = null;
            if (message.TryGetProperty("tool_calls", out var toolCalls))
            {
                calls = [];
                foreach (var call in toolCalls.EnumerateArray())
                {
                    var function = call.GetProperty("function");
                    calls.Add(new ChatTemplateToolCall(
                        call.TryGetProperty("id", out var id) ? id.GetString() : null,
                        function.GetProperty("name").GetString()!,
                        function.GetProperty("arguments").GetString()!));
                }
            }

            messages.Add(new ChatTemplateMessage(message.GetProperty("role").GetString()!, content)
            {
                ToolCalls = calls,
                ToolCallId = message.TryGetProperty("tool_call_id", out var toolCallId) ? toolCallId.GetString() : null,
                Name = message.TryGetProperty("name", out var name) ? name.GetString() : null,
            });
        }

        List<ChatTemplateTool>? tools = null;
        if (root.TryGetProperty("tools", out var toolsElement))
        {
            tools = [];
            foreach (var tool in toolsElement.EnumerateArray())
            {
                var function = tool.GetProperty("function");
                tools.Add(new ChatTemplateTool(
                    function.GetProperty("name").GetString()!,
                    function.TryGetProperty("description", out var description) ? description.GetString() : null,
                    function.TryGetProperty("parameters", out var parameters) ? parameters.GetRawText() : null));
            }
        }

        return new ChatTemplateRequest(messages) { Tools = tools, AddGenerationPrompt = true };
    }
}
