using LlmServer.Templating.Chat;

namespace LlmServer.Templating.Tests;

/// <summary>The messages as llama.cpp hands them to a template: a template that takes arguments as objects parses them.</summary>
public sealed class ChatTemplateAdjustmentsTests
{
    [Fact]
    public void Arguments_that_are_not_json_are_refused_in_the_parsers_words_without_its_positions()
    {
        var template = ChatTemplateFixtureTests.Load("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use");
        var request = new ChatTemplateRequest(
        [
            new ChatTemplateMessage("user", "Add 4 and 5."),
            new ChatTemplateMessage("assistant", null) { ToolCalls = [new ChatTemplateToolCall("call_1", "add", "{a: 4")] },
        ]);

        var error = Assert.Throws<FormatException>(() => template.Render(request));

        Assert.StartsWith("Failed to parse tool call arguments as JSON: 'a' is an invalid start of a property name.", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("BytePositionInLine", error.Message, StringComparison.Ordinal);
    }
}
