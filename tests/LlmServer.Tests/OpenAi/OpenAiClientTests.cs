using System.ClientModel;
using System.Text;
using LlmServer.Tests.Infrastructure;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using OpenAI;
using OpenAI.Chat;

namespace LlmServer.Tests.OpenAi;

/// <summary>Real OpenAI clients, unchanged, pointed at the server: the official .NET SDK and Semantic Kernel's connector.</summary>
public sealed class OpenAiClientTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private const string ModelId = "stories260K";

    private readonly Uri _endpoint = new(fixture.Server.BaseAddress, "/v1");

    [Fact]
    public async Task Official_sdk_reads_text_finish_reason_and_usage()
    {
        var client = OfficialClient();
        ChatCompletion completion = await client.CompleteChatAsync(
            [new SystemChatMessage("You tell stories."), new UserChatMessage("Once upon a time")],
            new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 });

        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.False(string.IsNullOrEmpty(completion.Content[0].Text));
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(ModelId, completion.Model);
        Assert.StartsWith("chatcmpl-", completion.Id);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 0);
        Assert.Equal(completion.Usage.InputTokenCount + 8, completion.Usage.TotalTokenCount);
        Assert.NotNull(completion.Usage.InputTokenDetails);

        ChatCompletion stopped = await client.CompleteChatAsync(
            [new UserChatMessage("Once upon a time")],
            new ChatCompletionOptions { MaxOutputTokenCount = 200, Temperature = 0, StopSequences = { "." } });
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.DoesNotContain(".", stopped.Content[0].Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Official_sdk_streams_text_finish_reason_and_usage()
    {
        var client = OfficialClient();
        var text = new StringBuilder();
        ChatFinishReason? finishReason = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in client.CompleteChatStreamingAsync(
            [new UserChatMessage("Once upon a time")],
            new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 }))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finishReason ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.True(updates > 2);
        Assert.False(string.IsNullOrEmpty(text.ToString()));
        Assert.Equal(ChatFinishReason.Length, finishReason);

        // The SDK asks for stream_options.include_usage itself.
        Assert.NotNull(usage);
        Assert.Equal(8, usage.OutputTokenCount);
        Assert.True(usage.InputTokenCount > 0);
        Assert.Equal(usage.InputTokenCount + 8, usage.TotalTokenCount);
    }

    [Fact]
    public async Task Official_sdk_surfaces_errors_with_their_status()
    {
        var client = new ChatClient("no-such-model", new ApiKeyCredential("any-key"), new OpenAIClientOptions { Endpoint = _endpoint });
        var error = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("Hi")]));
        Assert.Equal(404, error.Status);
        Assert.Contains("no-such-model", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Semantic_kernel_reads_text_finish_reason_and_usage()
    {
        var chat = KernelChat();
        var history = new ChatHistory("You tell stories.");
        history.AddUserMessage("Once upon a time");
        var settings = new OpenAIPromptExecutionSettings { MaxTokens = 8, Temperature = 0 };

        var reply = await chat.GetChatMessageContentAsync(history, settings);

        Assert.Equal(AuthorRole.Assistant, reply.Role);
        Assert.False(string.IsNullOrEmpty(reply.Content));
        Assert.Equal(ModelId, reply.ModelId);
        Assert.NotNull(reply.Metadata);
        Assert.Equal("Length", reply.Metadata["FinishReason"]?.ToString());
        var usage = Assert.IsType<ChatTokenUsage>(reply.Metadata["Usage"]);
        Assert.Equal(8, usage.OutputTokenCount);
        Assert.True(usage.InputTokenCount > 0);
        Assert.Equal(usage.InputTokenCount + 8, usage.TotalTokenCount);
    }

    [Fact]
    public async Task Semantic_kernel_streams_text_finish_reason_and_usage()
    {
        var chat = KernelChat();
        var history = new ChatHistory();
        history.AddUserMessage("Once upon a time");
        var settings = new OpenAIPromptExecutionSettings { MaxTokens = 8, Temperature = 0 };

        var text = new StringBuilder();
        string? finishReason = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.GetStreamingChatMessageContentsAsync(history, settings))
        {
            text.Append(update.Content);
            if (update.Metadata is { } metadata)
            {
                finishReason ??= metadata.TryGetValue("FinishReason", out var reason) ? reason?.ToString() : null;
                usage ??= metadata.TryGetValue("Usage", out var value) ? value as ChatTokenUsage : null;
            }
        }

        Assert.False(string.IsNullOrEmpty(text.ToString()));
        Assert.Equal("Length", finishReason);
        Assert.NotNull(usage);
        Assert.Equal(8, usage.OutputTokenCount);
        Assert.True(usage.InputTokenCount > 0);
    }

    private ChatClient OfficialClient() =>
        new(ModelId, new ApiKeyCredential("any-key"), new OpenAIClientOptions { Endpoint = _endpoint });

    private IChatCompletionService KernelChat()
    {
#pragma warning disable SKEXP0010 // The endpoint overload is how Semantic Kernel talks to OpenAI-compatible servers.
        var kernel = Kernel.CreateBuilder().AddOpenAIChatCompletion(ModelId, _endpoint, apiKey: "any-key").Build();
#pragma warning restore SKEXP0010
        return kernel.GetRequiredService<IChatCompletionService>();
    }
}
