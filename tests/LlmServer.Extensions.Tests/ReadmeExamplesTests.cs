using System.Text;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Extensions.AI;
using LlmServer.SemanticKernel;
using LlmServer.Testing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.SemanticKernel;

namespace LlmServer.Extensions.Tests;

/// <summary>The README's "In-process use" snippets, verbatim between the markers, so they compile and run.</summary>
[Collection(EngineHostCollection.Name)]
public sealed class ReadmeExamplesTests
{
    [Fact]
    public async Task Readme_chat_client_snippet_runs()
    {
        var modelPath = TestModels.Stories260K;
        var output = new StringBuilder();

        // README: chat client
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration["Model:Path"] = modelPath;
        builder.Services.AddLlmServerEngine(builder.Configuration);
        builder.Services.AddLlmServerChatClient().UseLogging().UseOpenTelemetry();

        using var host = builder.Build();
        await host.StartAsync();
        await host.Services.GetRequiredService<ITextGenerator>().WaitUntilReadyAsync();

        var chat = host.Services.GetRequiredService<IChatClient>();
        var options = new ChatOptions { Temperature = 0.7f, MaxOutputTokens = 32, ConversationId = "alice" };
        await foreach (var update in chat.GetStreamingResponseAsync("Tell me a story.", options))
        {
            output.Append(update.Text);
        }
        // README: end

        await host.StopAsync();
        Assert.False(string.IsNullOrWhiteSpace(output.ToString()));
    }

    [Fact]
    public async Task Readme_semantic_kernel_snippet_runs()
    {
        var modelPath = TestModels.Stories260K;
        var output = new StringBuilder();

        // README: semantic kernel
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration["Model:Path"] = modelPath;
        builder.Services.AddLlmServerEngine(builder.Configuration);
        builder.Services.AddLlmServerChatClient();
        builder.Services.AddKernel().AddLlmServerChatCompletion();

        using var host = builder.Build();
        await host.StartAsync();
        await host.Services.GetRequiredService<ITextGenerator>().WaitUntilReadyAsync();

        var kernel = host.Services.GetRequiredService<Kernel>();
        var settings = new PromptExecutionSettings { ExtensionData = new Dictionary<string, object> { ["temperature"] = 0.7, ["max_tokens"] = 32 } };
        await foreach (var chunk in kernel.InvokePromptStreamingAsync("Tell me a story about {{$animal}}.", new(settings) { ["animal"] = "a cat" }))
        {
            output.Append(chunk);
        }
        // README: end

        await host.StopAsync();
        Assert.False(string.IsNullOrWhiteSpace(output.ToString()));
    }
}
