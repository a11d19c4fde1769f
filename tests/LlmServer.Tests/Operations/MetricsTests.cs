using System.Net;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

public sealed class MetricsTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly TestServer _server = fixture.Server;

    [Fact]
    public async Task Metrics_exports_the_engine_instruments_with_vllm_style_names_and_counters_move_after_a_request()
    {
        var before = await ScrapeAsync();

        var generator = _server.Services.GetRequiredService<ITextGenerator>();
        await using var stream = generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 6, IgnoreEos = true, Sampling = new SamplingOptions { Temperature = 0 } });
        var result = await stream.CollectAsync();
        // The request's metrics are recorded when its slot is released, after its last event.
        await stream.Ended;
        var usage = result.Choices[0].Completion.Usage;
        Assert.Equal(6, usage.CompletionTokens);

        var after = await ScrapeAsync();
        foreach (var name in new[]
        {
            "llmserver_num_requests_running", "llmserver_num_requests_waiting", "llmserver_kv_cache_usage_perc", "llmserver_kv_cache_reusable_perc",
            "llmserver_prompt_tokens_total", "llmserver_generation_tokens_total",
            "llmserver_prefix_cache_queries_total", "llmserver_prefix_cache_hits_total", "llmserver_request_success_total",
            "llmserver_time_to_first_token_seconds_bucket", "llmserver_inter_token_latency_seconds_bucket",
            "llmserver_e2e_request_latency_seconds_bucket", "llmserver_request_queue_time_seconds_bucket",
            "http_server_request_duration_seconds_bucket",
            "llmserver_decode_threads", "llmserver_decode_threads_max", "llmserver_batch_threads",
        })
        {
            Assert.True(PrometheusText.Has(after, name), $"/metrics lacks {name}:\n{after}");
        }

        // Exactly this request: the exporter counts only this server's meters, not those of servers in parallel tests.
        Assert.Equal(usage.CompletionTokens, PrometheusText.Sum(after, "llmserver_generation_tokens_total") - PrometheusText.Sum(before, "llmserver_generation_tokens_total"));
        Assert.Equal(usage.PromptTokens, PrometheusText.Sum(after, "llmserver_prompt_tokens_total") - PrometheusText.Sum(before, "llmserver_prompt_tokens_total"));
        Assert.Equal(1, PrometheusText.Sum(after, "llmserver_request_success_total", "finished_reason=\"length\"") - PrometheusText.Sum(before, "llmserver_request_success_total", "finished_reason=\"length\""));
        Assert.Equal(1, PrometheusText.Sum(after, "llmserver_e2e_request_latency_seconds_count") - PrometheusText.Sum(before, "llmserver_e2e_request_latency_seconds_count"));

        // vLLM's bucket boundaries, not OpenTelemetry's millisecond-scale defaults.
        Assert.Contains("llmserver_time_to_first_token_seconds_bucket{", after, StringComparison.Ordinal);
        Assert.Contains("le=\"0.005\"", after, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GenAi_server_metrics_follow_the_semantic_conventions_for_a_chat_a_completion_a_cancelled_and_a_refused_request()
    {
        var generator = _server.Services.GetRequiredService<ITextGenerator>();
        var model = generator.Model!.Id;
        var chatLabels = $"gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"llmserver\",gen_ai_request_model=\"{model}\",gen_ai_response_model=\"{model}\"";
        var before = await ScrapeAsync();

        await using (var chat = generator.Submit(new GenerationRequest { Messages = [new ChatTurn("user", "Hi")], MaxTokens = 5, IgnoreEos = true, Sampling = new SamplingOptions { Temperature = 0 } }))
        {
            Assert.Equal(5, (await chat.CollectAsync()).Choices[0].Completion.Usage.CompletionTokens);
            await chat.Ended;
        }

        await using (var completion = generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 3, IgnoreEos = true }))
        {
            await completion.CollectAsync();
            await completion.Ended;
        }

        // Cancelled before it could generate (cancelling after its first token would race its last).
        await using (var cancelled = generator.Submit(new GenerationRequest { Prompt = "Once upon a time", MaxTokens = 400, IgnoreEos = true }))
        {
            cancelled.Cancel();
            await cancelled.Ended;
        }

        // Refused before it ran: a prompt over the slot's context.
        var refusal = Assert.Throws<GenerationException>(() => generator.Submit(new GenerationRequest { Prompt = string.Join(' ', Enumerable.Repeat("Once upon a time", 2000)) }));
        Assert.Equal(GenerationErrorCode.ContextLengthExceeded, refusal.Code);

        var after = await ScrapeAsync();
        double Moved(string name, string labels) => PrometheusText.Sum(after, name, labels) - PrometheusText.Sum(before, name, labels);

        Assert.True(Moved("gen_ai_server_request_duration_seconds_count", chatLabels) >= 1, after);
        Assert.True(Moved("gen_ai_server_time_to_first_token_seconds_count", chatLabels) >= 1, after);
        // Five tokens give four gaps, recorded as one request's mean.
        Assert.True(Moved("gen_ai_server_time_per_output_token_seconds_count", chatLabels) >= 1, after);
        Assert.True(Moved("gen_ai_server_request_duration_seconds_count", "gen_ai_operation_name=\"text_completion\"") >= 2, after);
        Assert.True(Moved("gen_ai_server_request_duration_seconds_count", "error_type=\"cancelled\"") >= 1, after);
        Assert.True(Moved("gen_ai_server_request_duration_seconds_count", "error_type=\"context_length_exceeded\"") >= 1, after);
        // A request that did not succeed has a duration but no time to first token or per token, as the conventions say.
        Assert.False(PrometheusText.Samples(after).Any(s => s.Name.StartsWith("gen_ai_server_time_", StringComparison.Ordinal) && s.Labels.Contains("error_type", StringComparison.Ordinal)), after);
        // The conventions' bucket boundaries (advice on the instruments), not OpenTelemetry's defaults.
        Assert.True(HasBucket(after, "gen_ai_server_request_duration_seconds_bucket", "81.92"), after);
        Assert.True(HasBucket(after, "gen_ai_server_time_to_first_token_seconds_bucket", "0.06"), after);
        Assert.True(HasBucket(after, "gen_ai_server_time_per_output_token_seconds_bucket", "0.075"), after);
    }

    [Fact]
    public async Task Props_reports_backend_slots_context_per_slot_model_and_build()
    {
        using var response = await _server.Client.GetAsync(new Uri("/props", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        Assert.Equal(4, root.GetProperty("total_slots").GetInt32());
        Assert.Equal(512, root.GetProperty("n_ctx").GetInt32());
        Assert.StartsWith("CPU", root.GetProperty("backend").GetProperty("kind").GetString(), StringComparison.Ordinal);
        Assert.Equal("llama", root.GetProperty("model").GetProperty("architecture").GetString());
        Assert.Equal(512, root.GetProperty("model").GetProperty("n_vocab").GetInt32());
        Assert.False(string.IsNullOrEmpty(root.GetProperty("build_info").GetString()));
        Assert.Equal("ready", root.GetProperty("state").GetString());

        // The engine's own ranges, which the chat page reads instead of copying.
        var limits = root.GetProperty("limits");
        Assert.Equal(0, limits.GetProperty("temperature").GetProperty("minimum").GetDouble());
        Assert.Equal(2, limits.GetProperty("temperature").GetProperty("maximum").GetDouble());
        Assert.Equal(0, limits.GetProperty("top_p").GetProperty("exclusive_minimum").GetDouble());
        Assert.Equal(1, limits.GetProperty("top_p").GetProperty("maximum").GetDouble());
        Assert.Equal(1, limits.GetProperty("max_tokens").GetProperty("minimum").GetDouble());
        Assert.False(limits.GetProperty("max_tokens").TryGetProperty("maximum", out _));
        // The sessions' text limits (the options' defaults), which the chat page's boxes hold to.
        Assert.Equal(200, limits.GetProperty("title_length").GetInt32());
        Assert.Equal(32_768, limits.GetProperty("message_length").GetInt32());
        Assert.Equal(32_768, limits.GetProperty("system_prompt_length").GetInt32());
        // stories260K ships no chat template: the configured fallback serves, with no Jinja source.
        Assert.Equal("fallback", root.GetProperty("chat_template_source").GetProperty("origin").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("chat_template").ValueKind);
        // The test server fixes one thread each: kept as configured, not adapted.
        var threading = root.GetProperty("backend").GetProperty("threading");
        Assert.Equal("1", threading.GetProperty("threads_setting").GetString());
        Assert.Equal(1, threading.GetProperty("threads").GetInt32());
        Assert.Equal(1, threading.GetProperty("batch_threads").GetInt32());
        Assert.False(threading.GetProperty("adaptive").GetBoolean());
        Assert.Equal("decode threads as configured", threading.GetProperty("reason").GetString());
        Assert.Contains("GOMP_SPINCOUNT", threading.GetProperty("openmp").GetString(), StringComparison.Ordinal);
    }

    private static bool HasBucket(string exposition, string name, string boundary) =>
        PrometheusText.Samples(exposition).Any(s => s.Name == name && s.Labels.Contains($"le=\"{boundary}\"", StringComparison.Ordinal));

    private async Task<string> ScrapeAsync()
    {
        using var response = await _server.Client.GetAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }
}
