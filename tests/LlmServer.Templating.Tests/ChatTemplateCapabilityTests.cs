using LlmServer.Templating.Chat;

namespace LlmServer.Templating.Tests;

/// <summary>Capabilities probed from real templates: tools, one call and parallel calls are each probed apart.</summary>
public sealed class ChatTemplateCapabilityTests
{
    [Theory]
    [InlineData("meta-llama-Llama-3.1-8B-Instruct")]
    [InlineData("meta-llama-Llama-3.3-70B-Instruct")]
    public void Llama_3_takes_tools_and_one_call_but_refuses_parallel_calls(string template)
    {
        var caps = ChatTemplateFixtureTests.Load(template).Capabilities;

        Assert.True(caps.SupportsTools);
        Assert.True(caps.SupportsToolCalls);
        Assert.False(caps.SupportsParallelToolCalls);
    }

    [Theory]
    [InlineData("Qwen-Qwen2.5-7B-Instruct")]
    [InlineData("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use")]
    public void A_template_taking_parallel_calls_has_all_three(string template)
    {
        var caps = ChatTemplateFixtureTests.Load(template).Capabilities;

        Assert.True(caps.SupportsTools);
        Assert.True(caps.SupportsToolCalls);
        Assert.True(caps.SupportsParallelToolCalls);
    }

    [Fact]
    public void A_template_without_tools_has_none()
    {
        var caps = ChatTemplateFixtureTests.Load("google-gemma-2-2b-it").Capabilities;

        Assert.False(caps.SupportsTools);
        Assert.False(caps.SupportsParallelToolCalls);
    }

    [Fact]
    public void DeepSeek_V3_1_switches_thinking_by_its_own_variable()
    {
        var template = ChatTemplateFixtureTests.Load("deepseek-ai-DeepSeek-V3.1");
        ChatTemplateMessage[] messages = [new("user", "Hi")];

        Assert.True(template.Capabilities.SupportsThinking);
        Assert.EndsWith("<think>", template.Render(new ChatTemplateRequest(messages) { EnableThinking = true }), StringComparison.Ordinal);
        Assert.EndsWith("</think>", template.Render(new ChatTemplateRequest(messages) { EnableThinking = false }), StringComparison.Ordinal);
    }
}
