using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

/// <summary>
/// KV usage counts the cells running requests hold; the cells idle slots keep for prefix reuse (a finished
/// request's prompt and answer) are reported apart, in <c>/props</c> and as a gauge of their own.
/// </summary>
public sealed class KvCacheUsageTests
{
    [Fact]
    public async Task Usage_counts_running_requests_and_the_cache_a_finished_request_leaves_is_reported_as_reusable()
    {
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(configureServices: gate.Install);
        var generator = server.Services.GetRequiredService<ITextGenerator>();

        var before = await PropsAsync(server);
        Assert.Equal((0.0, 0.0), before);

        // The prompt's step passes; the next one is held, so the request holds its slot's cells.
        gate.CloseAfter(1);
        await using var stream = generator.Submit(new GenerationRequest { Prompt = "Once upon a time there was a little girl", MaxTokens = 8, IgnoreEos = true, Sampling = new SamplingOptions { Temperature = 0 } });
        await gate.Blocked;
        var running = await PropsAsync(server);
        Assert.True(running.Usage > 0, $"usage {running.Usage} while a request runs");
        Assert.Equal(0.0, running.Reusable);

        gate.Open();
        var result = await stream.CollectAsync();
        var usage = result.Choices[0].Completion.Usage;

        // Its cells stay in the idle slot for prefix reuse: reusable, not used.
        var finished = await PropsAsync(server);
        Assert.Equal(0.0, finished.Usage);
        var model = generator.Model!;
        var cells = (double)(model.Slots * model.SlotContextLength);
        Assert.InRange(Math.Round(finished.Reusable * cells), usage.PromptTokens, usage.PromptTokens + usage.CompletionTokens);
    }

    private static async Task<(double Usage, double Reusable)> PropsAsync(TestServer server)
    {
        using var props = JsonDocument.Parse(await server.Client.GetStringAsync(new Uri("/props", UriKind.Relative)));
        return (props.RootElement.GetProperty("kv_cache_usage").GetDouble(), props.RootElement.GetProperty("kv_cache_reusable").GetDouble());
    }
}
