using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Services;

namespace LlmServer.Extensions.Tests;

[Collection(EngineHostCollection.Name)]
public sealed class SemanticKernelTests(EngineHostFixture host)
{
    private const string StoryPrompt = "Once upon a time there was a little dog.";

    private static PromptExecutionSettings Settings(string json) => JsonSerializer.Deserialize<PromptExecutionSettings>(json)!;

    [Fact]
    public async Task InvokePromptAsync_and_InvokePromptStreamingAsync_generate_through_the_engine()
    {
        var arguments = new KernelArguments(Settings("""{ "temperature": 0, "max_tokens": 12, "ignore_eos": true }"""));

        var result = await host.Kernel.InvokePromptAsync(StoryPrompt, arguments);
        var streamed = new StringBuilder();
        await foreach (var chunk in host.Kernel.InvokePromptStreamingAsync(StoryPrompt, arguments))
        {
            streamed.Append(chunk);
        }

        var direct = await host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions
        {
            Temperature = 0,
            MaxOutputTokens = 12,
            AdditionalProperties = new() { ["ignore_eos"] = true },
        });
        Assert.Equal(12, direct.Usage!.OutputTokenCount);
        Assert.Equal(direct.Text, result.GetValue<string>());
        Assert.Equal(direct.Text, streamed.ToString());
    }

    [Fact]
    public async Task Execution_settings_extension_data_reaches_the_engine()
    {
        var service = host.Kernel.GetRequiredService<IChatCompletionService>();
        var settings = Settings("""
            {
              "temperature": 0.7, "top_p": 0.9, "top_k": 20, "seed": 7, "max_tokens": 6,
              "frequency_penalty": 0.1, "presence_penalty": 0.2,
              "stop": ["zzz"], "min_p": 0.1, "ignore_eos": true
            }
            """);
        ChatHistory history = [];
        history.AddUserMessage(StoryPrompt);
        host.Calls.Clear();

        var streamed = new StringBuilder();
        await foreach (var chunk in service.GetStreamingChatMessageContentsAsync(history, settings, host.Kernel))
        {
            streamed.Append(chunk.Content);
        }

        var options = Assert.Single(host.Calls).Options!;
        Assert.Equal(0.7f, options.Temperature);
        Assert.Equal(0.9f, options.TopP);
        Assert.Equal(20, options.TopK);
        Assert.Equal(7, options.Seed);
        Assert.Equal(6, options.MaxOutputTokens);

        // The same request made directly gives the same text: every setting, mapped or passed through, was honoured.
        var direct = await host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions
        {
            Temperature = 0.7f,
            TopP = 0.9f,
            TopK = 20,
            Seed = 7,
            MaxOutputTokens = 6,
            FrequencyPenalty = 0.1f,
            PresencePenalty = 0.2f,
            AdditionalProperties = new() { ["stop"] = "zzz", ["min_p"] = 0.1, ["ignore_eos"] = true },
        });
        Assert.Equal(6, direct.Usage!.OutputTokenCount);
        Assert.Equal(direct.Text, streamed.ToString());
    }

    [Fact]
    public async Task A_refused_setting_is_named_as_the_caller_set_it()
    {
        var service = host.Kernel.GetRequiredService<IChatCompletionService>();
        ChatHistory history = [];
        history.AddUserMessage(StoryPrompt);

        var maxTokens = await Assert.ThrowsAsync<GenerationException>(() => service.GetChatMessageContentsAsync(history, Settings("""{ "max_tokens": -1 }"""), host.Kernel));
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"max_tokens\"]: must be at least 1.", maxTokens.Message);
        Assert.Equal(GenerationField.MaxTokens, maxTokens.Field);

        var minP = await Assert.ThrowsAsync<GenerationException>(async () =>
        {
            await foreach (var chunk in service.GetStreamingChatMessageContentsAsync(history, Settings("""{ "min_p": 2 }"""), host.Kernel))
            {
                Assert.Fail($"Nothing streams for a refused request: {chunk}");
            }
        });
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"min_p\"]: must be between 0 and 1.", minP.Message);

        var topP = await Assert.ThrowsAsync<GenerationException>(() => host.Kernel.InvokePromptAsync(StoryPrompt, new KernelArguments(Settings("""{ "top_p": 0 }"""))));
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"top_p\"]: must be greater than 0 and at most 1.", topP.Message);
        var stop = await Assert.ThrowsAsync<GenerationException>(() => service.GetChatMessageContentsAsync(history, Settings("""{ "stop": ["a", ""] }"""), host.Kernel));
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"stop\"]: takes at most 16 non-empty sequences.", stop.Message);
        var stopSequences = await Assert.ThrowsAsync<GenerationException>(() => service.GetChatMessageContentsAsync(history, Settings("""{ "stop_sequences": [""] }"""), host.Kernel));
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"stop_sequences\"]: takes at most 16 non-empty sequences.", stopSequences.Message);
    }

    [Fact]
    public async Task A_setting_the_chat_client_itself_refuses_is_named_as_the_caller_set_it()
    {
        var service = host.Kernel.GetRequiredService<IChatCompletionService>();
        ChatHistory history = [];
        history.AddUserMessage(StoryPrompt);

        var minP = await Assert.ThrowsAsync<GenerationException>(() => service.GetChatMessageContentsAsync(history, Settings("""{ "min_p": "high" }"""), host.Kernel));
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"min_p\"]: must be a number.", minP.Message);
        Assert.Equal(GenerationField.MinP, minP.Field);

        var ignoreEos = await Assert.ThrowsAsync<GenerationException>(async () =>
        {
            await foreach (var chunk in service.GetStreamingChatMessageContentsAsync(history, Settings("""{ "ignore_eos": "yes" }"""), host.Kernel))
            {
                Assert.Fail($"Nothing streams for a refused request: {chunk}");
            }
        });
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"ignore_eos\"]: must be true or false.", ignoreEos.Message);

        var grammar = await Assert.ThrowsAsync<GenerationException>(() => host.Kernel.InvokePromptAsync(StoryPrompt, new KernelArguments(Settings("""{ "grammar": 5 }"""))));
        Assert.Equal("PromptExecutionSettings.ExtensionData[\"grammar\"]: must be a GBNF grammar string.", grammar.Message);
    }

    [Fact]
    public async Task Cancelling_a_kernel_stream_ends_it_and_frees_the_slot()
    {
        var service = host.Kernel.GetRequiredService<IChatCompletionService>();
        ChatHistory history = [];
        history.AddUserMessage(StoryPrompt);
        using var cts = new CancellationTokenSource();
        var received = 0;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var chunk in service.GetStreamingChatMessageContentsAsync(history, Settings("""{ "ignore_eos": true }"""), host.Kernel, cts.Token))
            {
                received++;
                await cts.CancelAsync();
            }
        });

        Assert.True(received >= 1);
        await host.WaitUntilIdleAsync();
        Assert.Equal(0, host.Generator.GetStatus().Running);
    }

    [Fact]
    public void The_kernel_service_wraps_the_registered_chat_client_pipeline()
    {
        var service = host.Kernel.GetRequiredService<IChatCompletionService>();

        Assert.Same(service, host.Host.Services.GetRequiredService<IChatCompletionService>());
        Assert.Equal(host.Generator.Model!.Id, service.GetModelId());
    }
}
