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

    /// <summary>vLLM's buckets, so its dashboards' quantiles read the same.</summary>
    private static readonly double[] VllmTimeToFirstTokenBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];

    private static readonly double[] VllmInterTokenLatencyBuckets = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

    private static readonly double[] VllmRequestLatencyBuckets = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

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
        _timeToFirstToken = _meter.CreateHistogram("llmserver.time_to_first_token", "s", "Time from arrival to the first generated token.", tags: null, Buckets(VllmTimeToFirstTokenBuckets));
        _interTokenLatency = _meter.CreateHistogram("llmserver.inter_token_latency", "s", "Time between two generated tokens of a stream.", tags: null, Buckets(VllmInterTokenLatencyBuckets));
        _endToEnd = _meter.CreateHistogram("llmserver.e2e_request_latency", "s", "Time from arrival to the end of the request.", tags: null, Buckets(VllmRequestLatencyBuckets));
        _queueTime = _meter.CreateHistogram("llmserver.request_queue_time", "s", "Time a request waited for a slot.", tags: null, Buckets(VllmRequestLatencyBuckets));
        _warmSlides = _meter.CreateCounter<long>("llmserver.kv_window_slides_warm", description: "Session window slides served by moving the kept KV cells instead of prefilling them.");
        _kvSaves = _meter.CreateCounter<long>("llmserver.kv_saves", description: "Idle sessions' KV states written to the disk cache.");
        _kvSaveFailures = _meter.CreateCounter<long>("llmserver.kv_save_failures", description: "Idle sessions' KV states not saved: too large, the write queue full, or the write failed.");
        _kvRestores = _meter.CreateCounter<long>("llmserver.kv_restores", description: "Sessions whose KV state was restored from the disk cache.");
        _kvRestoreMisses = _meter.CreateCounter<long>("llmserver.kv_restore_misses", description: "Session requests without a resident slot that found no usable saved state.");
        _tokensNotPrefilled = _meter.CreateCounter<long>("llmserver.kv_tokens_not_prefilled", description: "Prompt tokens not prefilled thanks to a warm slide or a restore (tag: reason).");
        _genAiRequestDuration = _meter.CreateHistogram(
            "gen_ai.server.request.duration", "s", "Generative AI server request duration such as time-to-last byte or last output token.",
            tags: null, Buckets([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]));
        _genAiTimeToFirstToken = _meter.CreateHistogram(
            "gen_ai.server.time_to_first_token", "s", "Time to generate first token for successful responses.",
            tags: null, Buckets([0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]));
        _genAiTimePerOutputToken = _meter.CreateHistogram(
            "gen_ai.server.time_per_output_token", "s", "Time per output token generated after the first token for successful responses.",
            tags: null, Buckets([0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5]));
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
    /// A request ended (all its choices). The GenAI metrics record a duration for every interactive request, with
    /// <c>error.type</c> when it was cancelled or failed, and time to first token and per output token for successful
    /// ones only, as the conventions define them. The batch lane is left out of them: its requests wait for idle slots
    /// by design, and that wait would read as the server's latency.
    /// </summary>
    public void Finished(FinishedRequest finished)
    {
        _promptTokens.Add(finished.PromptTokens);
        _requestSuccess.Add(1, new KeyValuePair<string, object?>("finished_reason", finished.Reason.ToName()));
        _endToEnd.Record(finished.SinceArrival.TotalSeconds);
        if (finished.IsBatch)
        {
            return;
        }

        var tags = GenAiTags(finished.Operation);
        var errorType = finished.Reason switch
        {
            FinishReason.Cancelled => FinishReason.Cancelled.ToName(),
            FinishReason.Error => ErrorType(finished.ErrorCode ?? GenerationErrorCode.Internal),
            _ => null,
        };
        if (errorType is not null)
        {
            tags.Add("error.type", errorType);
        }

        _genAiRequestDuration.Record(finished.SinceArrival.TotalSeconds, tags);
        if (errorType is not null)
        {
            return;
        }

        if (finished.ToFirstToken is { } first)
        {
            _genAiTimeToFirstToken.Record(first.TotalSeconds, tags);
        }

        if (finished.PerOutputToken is { } perToken)
        {
            _genAiTimePerOutputToken.Record(perToken.TotalSeconds, tags);
        }
    }

    /// <summary>
    /// An interactive request the engine refused before it ran (a full queue, a prompt over the context, a template's
    /// refusal, ...): a GenAI request duration with its <c>error.type</c>.
    /// </summary>
    public void Refused(GenAiOperation operation, GenerationErrorCode code, TimeSpan sinceArrival)
    {
        var tags = GenAiTags(operation);
        tags.Add("error.type", ErrorType(code));
        _genAiRequestDuration.Record(sinceArrival.TotalSeconds, tags);
    }

    private TagList GenAiTags(GenAiOperation operation)
    {
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

        return tags;
    }

    /// <summary>The GenAI metrics' <c>error.type</c> of a failed or refused request: the engine's error code in snake case.</summary>
    private static string ErrorType(GenerationErrorCode code) => code switch
    {
        GenerationErrorCode.InvalidRequest => "invalid_request",
        GenerationErrorCode.Overloaded => "overloaded",
        GenerationErrorCode.ContextLengthExceeded => "context_length_exceeded",
        GenerationErrorCode.Unavailable => "unavailable",
        GenerationErrorCode.TemplateRefused => "template_refused",
        _ => "internal",
    };

    public void Dispose() => _meter.Dispose();

    /// <summary>Bucket boundaries as advice on the instrument, which every exporter (Prometheus, OTLP) takes up.</summary>
    private static InstrumentAdvice<double> Buckets(double[] boundaries) => new() { HistogramBucketBoundaries = boundaries };
}

/// <summary>The GenAI conventions' <c>gen_ai.operation.name</c> of a request: chat messages or a raw prompt.</summary>
internal enum GenAiOperation
{
    Chat,
    TextCompletion,
}

/// <summary>The one place that decides a request's <see cref="GenAiOperation"/>, for the refused and the finished alike.</summary>
internal static class GenAiOperationExtensions
{
    extension(GenAiOperation)
    {
        public static GenAiOperation Of(GenerationRequest request) =>
            request.Messages is null ? GenAiOperation.TextCompletion : GenAiOperation.Chat;
    }
}

/// <summary>What the metrics take from a request that ended: its outcome and its times.</summary>
internal sealed record FinishedRequest(
    FinishReason Reason,
    GenerationErrorCode? ErrorCode,
    GenAiOperation Operation,
    bool IsBatch,
    int PromptTokens,
    TimeSpan SinceArrival,
    TimeSpan? ToFirstToken,
    TimeSpan? PerOutputToken);
