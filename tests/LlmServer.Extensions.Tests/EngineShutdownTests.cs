using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Extensions.AI;
using LlmServer.Testing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace LlmServer.Extensions.Tests;

/// <summary>Drains an engine of its own (it joins the collection only to run alone).</summary>
[Collection(EngineHostCollection.Name)]
public sealed class EngineShutdownTests
{
    [Fact]
    public async Task A_stream_the_engine_cancels_while_draining_throws_and_new_calls_are_refused()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Model:Path"] = TestModels.Stories260K, ["Scheduler:Slots"] = "1", ["Model:Threads"] = "1", ["Model:BatchThreads"] = "1" });
        builder.Services.AddLlmServerEngine(builder.Configuration);
        builder.Services.AddLlmServerChatClient();
        using var host = builder.Build();
        await host.StartAsync();
        var generator = host.Services.GetRequiredService<ITextGenerator>();
        await generator.WaitUntilReadyAsync();
        var chat = host.Services.GetRequiredService<IChatClient>();
        var endless = new ChatOptions { AdditionalProperties = new() { ["ignore_eos"] = true } };

        var received = 0;
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in chat.GetStreamingResponseAsync("Once upon a time", endless))
            {
                if (received++ == 0)
                {
                    await generator.DrainAsync(TimeSpan.Zero);
                }
            }
        });

        Assert.Contains("draining", cancelled.Message, StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<GenerationException>(() => chat.GetResponseAsync("Once upon a time"));
        Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
        await EngineHostFixture.WaitUntilIdleAsync(host.Services);
        Assert.Equal(0, generator.GetStatus().Running);
        await host.StopAsync();
    }
}
