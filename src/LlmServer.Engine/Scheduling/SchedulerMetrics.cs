using System.Diagnostics;
using System.Diagnostics.Metrics;
using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Engine metrics on the meter <c>LlmServer.Engine</c>, named after vLLM's so existing dashboards fit once the
/// Prometheus exporter renders them (<c>llmserver_time_to_first_token_seconds</c>, ...), and OpenTelemetry's GenAI
/// model-server metrics (<c>gen_ai.server.*</c>, semantic conventions v1.37 and later) for GenAI dashboards.
/// </summary>
internal sealed class SchedulerMetrics : IDisposable
{
    public const string MeterName = "LlmServer.Engine";

    private readonly Meter _meter;
    private readonly Counter<long> _promptTokens;
    private readonly Counter<long> _generationTokens;
    private readonly Counter<long> _prefixQueries;
    private readonly Counter<long> _prefixHits;
    private readonly Counter<long> _requestSuccess;
    private readonly Counter<long> _preemptions;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _interTokenLatency;
    private readonly Histogram<double> _endToEnd;
    private readonly Histogram<double> _queueTime;
    private readonly Counter<long> _warmSlides;
    private readonly Counter<long> _kvSaves;
    private readonly Counter<long> _kvSaveFailures;
    private readonly Counter<long> _kvRestores;
    private readonly Counter<long> _kvRestoreMisses;
    private readonly Counter<long> _tokensNotPrefilled;
    private readonly Histogram<double> _genAiRequestDuration;
    private readonly Histogram<double> _genAiTimeToFirstToken;
    private readonly Histogram<double> _genAiTimePerOutputToken;
    private readonly string? _modelId;

    /// <summary><c>gen_ai.provider.name</c>: no well-known value fits a self-hosted server, so its own name.</summary>
    public const string GenAiProviderName = "llmserver";

    public SchedulerMetrics(Func<SchedulerStatus> status, IMeterFactory? meterFactory = null, string? modelId = null)
    {
        _modelId = modelId;
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _meter.CreateObservableGauge("llmserver.num_requests_running", () => status().Running, description: "Requests generating in a KV slot.");
        _meter.CreateObservableGauge("llmserver.num_requests_waiting", () => status().Waiting, description: "Requests waiting for a slot.");
        _meter.CreateObservableGauge("llmserver.num_batch_requests_running", () => status().BatchRunning, description: "Batch-lane requests generating in a KV slot.");
        _meter.CreateObservableGauge("llmserver.num_batch_requests_waiting", () => status().BatchWaiting, description: "Batch-lane requests waiting for a slot that interactive traffic leaves idle.");
        _meter.CreateObservableGauge("llmserver.kv_cache_usage_perc", () => status().KvCacheUsage, description: "KV-cache cells held by running requests over all cells (0 to 1).");
        _meter.CreateObservableGauge("llmserver.kv_cache_reusable_perc", () => status().KvCacheReusable, description: "KV-cache cells idle slots keep for prefix reuse (finished requests, idle sessions) over all cells (0 to 1).");
        _promptTokens = _meter.CreateCounter<long>("llmserver.prompt_tokens", description: "Prompt tokens of finished requests.");
        _generationTokens = _meter.CreateCounter<long>("llmserver.generation_tokens", description: "Generated tokens.");
        _prefixQueries = _meter.CreateCounter<long>("llmserver.prefix_cache_queries", description: "Prompt tokens looked up in the KV cache.");
        _prefixHits = _meter.CreateCounter<long>("llmserver.prefix_cache_hits", description: "Prompt tokens served from the KV cache.");
        _preemptions = _meter.CreateCounter<long>("llmserver.num_preemptions", description: "Batch requests that gave their slot to an interactive request.");
        _requestSuccess = _meter.CreateCounter<long>("llmserver.request_success", description: "Finished requests by finish reason.");
        _timeToFirstToken = _meter.CreateHistogram<double>("llmserver.time_to_first_token", "s", "Time from arrival to the first generated token.");
        _interTokenLatency = _meter.CreateHistogram<double>("llmserver.inter_token_latency", "s", "Time between two generated tokens of a stream.");
        _endToEnd = _meter.CreateHistogram<double>("llmserver.e2e_request_latency", "s", "Time from arrival to the end of the request.");
        _queueTime = _meter.CreateHistogram<double>("llmserver.request_queue_time", "s", "Time a request waited for a slot.");
        _warmSlides = _meter.CreateCounter<long>("llmserver.kv_window_slides_warm", description: "Session window slides served by moving the kept KV cells instead of prefilling them.");
        _kvSaves = _meter.CreateCounter<long>("llmserver.kv_saves", description: "Idle sessions' KV states written to the disk cache.");
        _kvSaveFailures = _meter.CreateCounter<long>("llmserver.kv_save_failures", description: "Idle sessions' KV states not saved: too large, the write queue full, or the write failed.");
        _kvRestores = _meter.CreateCounter<long>("llmserver.kv_restores", description: "Sessions whose KV state was restored from the disk cache.");
        _kvRestoreMisses = _meter.CreateCounter<long>("llmserver.kv_restore_misses", description: "Session requests without a resident slot that found no usable saved state.");
        _tokensNotPrefilled = _meter.CreateCounter<long>("llmserver.kv_tokens_not_prefilled", description: "Prompt tokens not prefilled thanks to a warm slide or a restore (tag: reason).");
        _genAiRequestDuration = _meter.CreateHistogram(
            "gen_ai.server.request.duration", "s", "Generative AI server request duration such as time-to-last byte or last output token.",
            tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        _genAiTimeToFirstToken = _meter.CreateHistogram(
            "gen_ai.server.time_to_first_token", "s", "Time to generate first token for successful responses.",
            tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] });
        _genAiTimePerOutputToken = _meter.CreateHistogram(
            "gen_ai.server.time_per_output_token", "s", "Time per output token generated after the first token for successful responses.",
            tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5] });
    }

    public void PrefixLookup(int promptTokens, int cachedTokens)
    {
        _prefixQueries.Add(promptTokens);
        _prefixHits.Add(cachedTokens);
    }

    public void WarmSlide(int keptTokens)
    {
        _warmSlides.Add(1);
        _tokensNotPrefilled.Add(keptTokens, new KeyValuePair<string, object?>("reason", "slide"));
    }

    /// <summary>A KV state save ended: written to the disk cache, or not saved (thread-safe: the disk writer reports too).</summary>
    public void KvSaveEnded(bool written) => (written ? _kvSaves : _kvSaveFailures).Add(1);

    public void KvRestored(int reusedTokens)
    {
        _kvRestores.Add(1);
        _tokensNotPrefilled.Add(reusedTokens, new KeyValuePair<string, object?>("reason", "restore"));
    }

    public void KvRestoreMissed() => _kvRestoreMisses.Add(1);

    public void Queued(TimeSpan waited) => _queueTime.Record(waited.TotalSeconds);

    public void FirstToken(TimeSpan sinceArrival) => _timeToFirstToken.Record(sinceArrival.TotalSeconds);

    public void NextToken(TimeSpan sincePrevious) => _interTokenLatency.Record(sincePrevious.TotalSeconds);

    public void Preempted() => _preemptions.Add(1);

    public void GeneratedToken() => _generationTokens.Add(1);

    /// <summary>
    /// A request's first choice ended. The GenAI metrics take <paramref name="errorType"/> (the engine's error code, or
    /// <c>cancelled</c>) on requests that did not succeed, and record time to first token and time per output token
    /// for successful ones only, as the conventions define them; <paramref name="decoding"/> is the time from the first
    /// sampled token to the last, over <paramref name="sampled"/> tokens.
    /// </summary>
    public void Finished(string finishReason, int promptTokens, TimeSpan sinceArrival, GenAiOperation operation, string? errorType, TimeSpan? toFirstToken, TimeSpan decoding, int sampled)
    {
        _promptTokens.Add(promptTokens);
        _requestSuccess.Add(1, new KeyValuePair<string, object?>("finished_reason", finishReason));
        _endToEnd.Record(sinceArrival.TotalSeconds);

        var tags = new TagList
        {
            { "gen_ai.operation.name", operation == GenAiOperation.Chat ? "chat" : "text_completion" },
            { "gen_ai.provider.name", GenAiProviderName },
        };
        if (_modelId is not null)
        {
            tags.Add("gen_ai.request.model", _modelId);
            tags.Add("gen_ai.response.model", _modelId);
        }

        if (errorType is not null)
        {
            tags.Add("error.type", errorType);
            _genAiRequestDuration.Record(sinceArrival.TotalSeconds, tags);
            return;
        }

        _genAiRequestDuration.Record(sinceArrival.TotalSeconds, tags);
        if (toFirstToken is { } first)
        {
            _genAiTimeToFirstToken.Record(first.TotalSeconds, tags);
        }

        if (sampled > 1)
        {
            _genAiTimePerOutputToken.Record(decoding.TotalSeconds / (sampled - 1), tags);
        }
    }

    /// <summary>The GenAI metrics' <c>error.type</c> of a failed request: the engine's error code in snake case.</summary>
    public static string ErrorType(GenerationErrorCode code) => code switch
    {
        GenerationErrorCode.InvalidRequest => "invalid_request",
        GenerationErrorCode.Overloaded => "overloaded",
        GenerationErrorCode.ContextLengthExceeded => "context_length_exceeded",
        GenerationErrorCode.Unavailable => "unavailable",
        GenerationErrorCode.TemplateRefused => "template_refused",
        _ => "internal",
    };

    public void Dispose() => _meter.Dispose();
}

/// <summary>The GenAI conventions' <c>gen_ai.operation.name</c> of a request: chat messages or a raw prompt.</summary>
internal enum GenAiOperation
{
    Chat,
    TextCompletion,
}
