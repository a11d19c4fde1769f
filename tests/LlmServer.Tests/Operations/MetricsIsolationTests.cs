using System.Net;
using LlmServer.Engine.Generation;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

/// <summary>Two servers in one process: each one's <c>/metrics</c> counts only its own work.</summary>
public sealed class MetricsIsolationTests
{
    [Fact]
    public async Task A_server_in_the_same_process_does_not_count_another_servers_requests()
    {
        await using var busy = await TestServer.StartAsync();
        await using var idle = await TestServer.StartAsync();

        var generator = busy.Services.GetRequiredService<ITextGenerator>();
        await using (var stream = generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 6, IgnoreEos = true, Sampling = new SamplingOptions { Temperature = 0 } }))
        {
            Assert.Equal(6, (await stream.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
            await stream.Ended;
        }

        var busyMetrics = await ScrapeAsync(busy);
        var idleMetrics = await ScrapeAsync(idle);
        Assert.Equal(6, PrometheusText.Sum(busyMetrics, "llmserver_generation_tokens_total"));
        Assert.True(PrometheusText.Has(idleMetrics, "llmserver_num_requests_running"), idleMetrics);
        Assert.Equal(0, PrometheusText.Sum(idleMetrics, "llmserver_generation_tokens_total"));
        Assert.Equal(0, PrometheusText.Sum(idleMetrics, "llmserver_request_success_total"));
    }

    private static async Task<string> ScrapeAsync(TestServer server)
    {
        using var response = await server.Client.GetAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }
}
