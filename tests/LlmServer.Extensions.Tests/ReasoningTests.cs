using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Extensions.AI;
using LlmServer.Testing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;
using FunctionCallContent = Microsoft.Extensions.AI.FunctionCallContent;
using FunctionResultContent = Microsoft.Extensions.AI.FunctionResultContent;
using TextContent = Microsoft.Extensions.AI.TextContent;

namespace LlmServer.Extensions.Tests;

/// <summary>
/// Reasoning through <see cref="IChatClient"/>: the answer's <c>&lt;think&gt;</c> block comes back as
/// <see cref="TextReasoningContent"/>, and an assistant message's reasoning goes to the template. A grammar makes the
/// tiny model write Qwen3's shape exactly.
/// </summary>
public sealed class ReasoningTests(Qwen3EngineHostFixture host) : IClassFixture<Qwen3EngineHostFixture>
{
    private const string Thinking = "<think>\nThe user greets me.\n</think>\n\nHello there.";

    [Fact]
    public async Task The_reasoning_comes_before_the_text_as_reasoning_content()
    {
        var response = await host.ChatClient.GetResponseAsync("Hi", Writing(Thinking));

        var message = Assert.Single(response.Messages);
        Assert.Collection(
            message.Contents,
            c => Assert.Equal("The user greets me.", Assert.IsType<TextReasoningContent>(c).Text),
            c => Assert.Equal("Hello there.", Assert.IsType<TextContent>(c).Text));
        Assert.Equal("Hello there.", response.Text);
        Assert.InRange(response.Usage!.ReasoningTokenCount!.Value, 1, response.Usage.OutputTokenCount!.Value - 1);
    }

    [Fact]
    public async Task A_stream_sends_the_reasoning_updates_before_the_text()
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in host.ChatClient.GetStreamingResponseAsync("Hi", Writing(Thinking)))
        {
            updates.Add(update);
        }

        var contents = updates.SelectMany(u => u.Contents).ToList();
        Assert.Equal("The user greets me.", string.Concat(contents.OfType<TextReasoningContent>().Select(c => c.Text)));
        Assert.Equal("Hello there.", string.Concat(contents.OfType<TextContent>().Select(c => c.Text)));
        Assert.True(contents.FindLastIndex(c => c is TextReasoningContent) < contents.FindIndex(c => c is TextContent), "reasoning came after text");
        var usage = Assert.Single(contents.OfType<UsageContent>()).Details;
        Assert.InRange(usage.ReasoningTokenCount!.Value, 1, usage.OutputTokenCount!.Value - 1);

        // Merged as callers merge them: one message, reasoning first.
        var merged = updates.ToChatResponse();
        Assert.IsType<TextReasoningContent>(merged.Messages[0].Contents[0]);
        Assert.Equal("Hello there.", merged.Text);
    }

    [Theory]
    [InlineData("<think>\n\n</think>", false)]
    [InlineData("<think>\n\n</think>\n\nHi.", true)]
    [InlineData("<think>\nHm.\n</think>", false)]
    [InlineData("<think>\nHm.\n</think>\n\nHi.", true)]
    [InlineData("<think>\nHm.", false)]
    public async Task Reasoning_tokens_are_the_block_with_its_tags_streamed_or_not(string output, bool answered)
    {
        var response = await host.ChatClient.GetResponseAsync("Hi", Writing(output));
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in host.ChatClient.GetStreamingResponseAsync("Hi", Writing(output)))
        {
            updates.Add(update);
        }

        // Counted as chat's reasoning_tokens: through the closing tag, so all output tokens when no answer follows.
        foreach (var usage in new[] { response.Usage!, Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>()).Details })
        {
            var outputTokens = (int)usage.OutputTokenCount!.Value;
            var reasoningTokens = (int)usage.ReasoningTokenCount!.Value;
            Assert.InRange(reasoningTokens, 1, answered ? outputTokens - 1 : outputTokens);
            Assert.True(answered || reasoningTokens == outputTokens, $"{reasoningTokens} of {outputTokens} output tokens are reasoning");
        }
    }

    [Fact]
    public async Task Semantic_kernel_gets_the_answer_without_its_reasoning()
    {
        var service = host.ChatClient.AsChatCompletionService();
        var settings = new PromptExecutionSettings
        {
            ExtensionData = new Dictionary<string, object>
            {
                ["max_tokens"] = 200,
                [ChatRequestMapper.GrammarKey] = Writing(Thinking).AdditionalProperties![ChatRequestMapper.GrammarKey]!,
            },
        };

        var result = await service.GetChatMessageContentAsync(new ChatHistory("Hi"), settings);

        // Semantic Kernel's adapter carries no TextReasoningContent over: the answer is the text alone, never the block.
        Assert.Equal("Hello there.", Assert.Single(result.Items).ToString());
        Assert.Equal("Hello there.", result.Content);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Reasoning_output_none_leaves_the_reasoning_out(bool stream)
    {
        var options = Writing(Thinking);
        options.Reasoning = new ReasoningOptions { Output = ReasoningOutput.None };

        List<AIContent> contents = [];
        if (stream)
        {
            await foreach (var update in host.ChatClient.GetStreamingResponseAsync("Hi", options))
            {
                contents.AddRange(update.Contents);
            }
        }
        else
        {
            contents.AddRange((await host.ChatClient.GetResponseAsync("Hi", options)).Messages.SelectMany(m => m.Contents));
        }

        Assert.DoesNotContain(contents, c => c is TextReasoningContent);
        Assert.Equal("Hello there.", string.Concat(contents.OfType<TextContent>().Select(c => c.Text)));
    }

    [Fact]
    public void Reasoning_effort_none_closes_the_block_in_the_prompt()
    {
        var thinking = Prompt([new ChatMessage(ChatRole.User, "Hi")], null);
        var notThinking = Prompt([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { Reasoning = new ReasoningOptions { Effort = ReasoningEffort.None } });

        Assert.EndsWith("<|im_start|>assistant\n", thinking, StringComparison.Ordinal);
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n", notThinking, StringComparison.Ordinal);
    }

    [Fact]
    public void An_assistant_messages_reasoning_reaches_the_template()
    {
        // A tool-call loop: the call comes after the last user message, so Qwen3 renders its reasoning.
        List<ChatMessage> history =
        [
            new(ChatRole.User, "What is the weather in Paris?"),
            new(ChatRole.Assistant, [new TextReasoningContent("I should look it up."), new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "Sunny")]),
        ];

        var prompt = Prompt(history, null);

        Assert.Contains("<|im_start|>assistant\n<think>\nI should look it up.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\"", prompt, StringComparison.Ordinal);
    }

    [Fact]
    public void Reasoning_of_an_earlier_turn_is_dropped_by_the_template()
    {
        List<ChatMessage> history =
        [
            new(ChatRole.User, "What is 2+2?"),
            new(ChatRole.Assistant, [new TextReasoningContent("An earlier thought."), new TextContent("4.")]),
            new(ChatRole.User, "And 3+3?"),
        ];

        var prompt = Prompt(history, null);

        Assert.Contains("<|im_start|>assistant\n4.<|im_end|>", prompt, StringComparison.Ordinal);
        Assert.DoesNotContain("An earlier thought.", prompt, StringComparison.Ordinal);
    }

    /// <summary>Options whose grammar lets the model write exactly <paramref name="output"/>.</summary>
    private static ChatOptions Writing(string output) => new()
    {
        MaxOutputTokens = 200,
        AdditionalProperties = new() { [ChatRequestMapper.GrammarKey] = "root ::= \"" + output.Replace("\n", "\\n", StringComparison.Ordinal) + "\"" },
    };

    /// <summary>The prompt the client's request renders to (the engine renders it as it would run it).</summary>
    private string Prompt(IEnumerable<ChatMessage> messages, ChatOptions? options) =>
        host.Generator.RenderPrompt(ChatRequestMapper.ToGenerationRequest(messages, options));
}
