using System.Diagnostics.Metrics;
using System.Threading.Channels;
using LLama;
using LLama.Common;
using LLama.Native;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Embeddings;

/// <summary>
/// Owns one llama context with embeddings on (pooled per sequence), separate from the scheduler's, on its own
/// thread (<c>llm-embeddings</c>): the thread that creates the context is its only caller, as the scheduler's is.
/// Inputs of concurrent requests are packed into one decode, up to <see cref="EmbeddingOptions.MaxSequences"/>
/// sequences and <see cref="EmbeddingOptions.ContextSize"/> tokens. The model loads on the first request, so a
/// server that never embeds pays nothing; with the served model the weights are memory-mapped twice, which shares
/// their pages.
/// </summary>
internal sealed partial class EmbeddingWorker : ITextEmbedder, IHostedService, IDisposable
{
    private readonly EmbeddingOptions _options;
    private readonly ModelOptions _model;
    private readonly ILogger<EmbeddingWorker> _logger;
    private readonly Meter _meter;
    private readonly Counter<long> _decodedTokens;
    private readonly Channel<EmbeddingJob> _jobs = Channel.CreateUnbounded<EmbeddingJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _startLock = new();
    private Thread? _thread;

    // Set under _startLock by StopAsync or Dispose: from then on no request starts the thread (and loads a model).
    private bool _stopping;
    private int _queuedInputs;
    private volatile Exception? _loadError;

    public EmbeddingWorker(IOptions<EmbeddingOptions> options, IOptions<ModelOptions> model, ILogger<EmbeddingWorker> logger, IMeterFactory? meterFactory = null)
    {
        _options = options.Value;
        _model = model.Value;
        _logger = logger;
        _meter = meterFactory?.Create(SchedulerMetrics.MeterName) ?? new Meter(SchedulerMetrics.MeterName);
        _decodedTokens = _meter.CreateCounter<long>("llmserver.embedding_tokens", description: "Tokens the embedding context decoded.");
        ModelId = string.IsNullOrWhiteSpace(_options.ModelPath)
            ? _model.Id ?? Path.GetFileNameWithoutExtension(_model.Path ?? string.Empty)
            : Path.GetFileNameWithoutExtension(_options.ModelPath);
    }

    public string ModelId { get; }

    private string ModelPath => string.IsNullOrWhiteSpace(_options.ModelPath) ? _model.Path! : _options.ModelPath;

    public Task<EmbeddingResult> EmbedAsync(IReadOnlyList<EmbeddingInput> inputs, int? dimensions = null, CancellationToken cancellationToken = default)
    {
        if (_loadError is not null)
        {
            throw new GenerationException(GenerationErrorCode.Unavailable, "The embedding model failed to load; see the server log.");
        }

        // Before the queue counts the inputs: a refusal here leaves nothing to take back. Inputs queued mean the thread
        // runs already, so starting it first makes no difference to the queue limit below.
        EnsureStarted();

        // One request larger than the whole queue is still admitted when nothing else waits.
        if (Interlocked.Add(ref _queuedInputs, inputs.Count) > _options.MaxQueuedInputs && Volatile.Read(ref _queuedInputs) != inputs.Count)
        {
            Interlocked.Add(ref _queuedInputs, -inputs.Count);
            throw new GenerationException(GenerationErrorCode.Overloaded, "Too many embedding inputs are waiting; retry shortly.") { BackOff = TimeSpan.FromSeconds(1) };
        }

        var job = new EmbeddingJob(inputs, dimensions, cancellationToken);
        job.Task.ContinueWith(_ => Interlocked.Add(ref _queuedInputs, -inputs.Count), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        if (!_jobs.Writer.TryWrite(job))
        {
            job.Fail(ShuttingDown());
        }

        return job.Task;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        var thread = Stop();
        return thread is null ? Task.CompletedTask : Task.Run(thread.Join, CancellationToken.None);
    }

    public void Dispose()
    {
        Stop()?.Join(TimeSpan.FromSeconds(30));
        _meter.Dispose();
    }

    /// <summary>
    /// Ends the intake and returns the thread, if one started: under the start lock, so a thread being started
    /// concurrently is either returned here or never started.
    /// </summary>
    private Thread? Stop()
    {
        lock (_startLock)
        {
            _stopping = true;
            _jobs.Writer.TryComplete();
            return _thread;
        }
    }

    private static GenerationException ShuttingDown() => new(GenerationErrorCode.Unavailable, "The server is shutting down.");

    private void EnsureStarted()
    {
        if (_thread is not null)
        {
            return;
        }

        lock (_startLock)
        {
            // A request during shutdown must not load a whole embedding model that nothing will serve from.
            if (_stopping)
            {
                throw ShuttingDown();
            }

            if (_thread is null)
            {
                var thread = new Thread(Run) { IsBackground = true, Name = "llm-embeddings" };
                thread.Start();
                _thread = thread;
            }
        }
    }

    private void Run()
    {
        LLamaWeights? weights = null;
        LLamaContext? context = null;
        try
        {
            (weights, context) = Load();
        }
        catch (Exception ex)
        {
            _loadError = ex;
            LogLoadFailed(_logger, ModelPath, ex);
        }

        try
        {
            Serve(weights, context);
        }
        finally
        {
            context?.Dispose();
            weights?.Dispose();
        }
    }

    private (LLamaWeights Weights, LLamaContext Context) Load()
    {
        var parameters = new ModelParams(ModelPath)
        {
            ContextSize = (uint)_options.ContextSize,
            BatchSize = (uint)_options.ContextSize,

            // Non-causal pooling needs each sequence whole in one micro-batch.
            UBatchSize = (uint)_options.ContextSize,
            SeqMax = (uint)_options.MaxSequences,

            // One input may use the whole context, not a per-sequence share of it.
            KVUnified = true,
            Embeddings = true,
            PoolingType = _options.Pooling switch
            {
                EmbeddingPooling.Mean => LLamaPoolingType.Mean,
                EmbeddingPooling.Cls => LLamaPoolingType.CLS,
                EmbeddingPooling.Last => LLamaPoolingType.Last,
                _ => LLamaPoolingType.Unspecified,
            },
            Threads = _model.Threads.Count > 0 ? _model.Threads.Count : Environment.ProcessorCount,
            BatchThreads = _model.BatchThreads.Count > 0 ? _model.BatchThreads.Count : Environment.ProcessorCount,
            GpuLayerCount = _model.GpuLayerCount ?? (NativeApi.llama_supports_gpu_offload() ? 999 : 0),
        };
        var weights = LLamaWeights.LoadFromFile(parameters);
        try
        {
            var context = weights.CreateContext(parameters);
            if (context.NativeHandle.PoolingType is LLamaPoolingType.None or LLamaPoolingType.Unspecified)
            {
                // A generative model names no pooling: mean pooling gives one vector per input.
                context.Dispose();
                parameters.PoolingType = LLamaPoolingType.Mean;
                context = weights.CreateContext(parameters);
            }

            LogLoaded(_logger, ModelId, context.EmbeddingSize, context.NativeHandle.PoolingType.ToString());
            return (weights, context);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private void Serve(LLamaWeights? weights, LLamaContext? context)
    {
        var pending = new List<EmbeddingJob>();
        var batch = new LLamaBatch();
        var bound = weights is null ? TokenCountBound.None : TokenCountBound.Of(weights);
        var reader = _jobs.Reader;
        while (true)
        {
            if (pending.Count == 0 && !reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                return;
            }

            while (reader.TryRead(out var job))
            {
                if (weights is null || context is null)
                {
                    job.Fail(new GenerationException(GenerationErrorCode.Unavailable, "The embedding model failed to load; see the server log."));
                }
                else if (Prepare(job, context, weights.Vocab.Count, bound))
                {
                    pending.Add(job);
                }
            }

            if (context is not null && pending.Count > 0)
            {
                DecodeOneBatch(pending, context, batch);
            }

            pending.RemoveAll(j => j.Task.IsCompleted);
        }
    }

    /// <summary>
    /// Checks a job's dimensions against the loaded model (the first job is the first to know its size), then
    /// tokenizes and checks its inputs; a bad one fails the job, naming the field, before anything is decoded.
    /// </summary>
    private bool Prepare(EmbeddingJob job, LLamaContext context, int vocabularySize, TokenCountBound bound)
    {
        if (job.Task.IsCompleted)
        {
            return false;
        }

        if (job.Dimensions is { } dimensions && dimensions != context.EmbeddingSize)
        {
            job.Fail(new GenerationException(
                GenerationErrorCode.InvalidRequest,
                $"must be {context.EmbeddingSize}, the size of this model's vectors (they are not shortened): omit it, or send {context.EmbeddingSize}.",
                GenerationField.Dimensions));
            return false;
        }

        for (var i = 0; i < job.Inputs.Count; i++)
        {
            var input = job.Inputs[i];
            int[] tokens;
            if (input.Tokens is { } ids)
            {
                if (ids.Any(t => t < 0 || t >= vocabularySize))
                {
                    return Refuse(job, i, $"holds token {ids.First(t => t < 0 || t >= vocabularySize)}, which is not in the embedding model's vocabulary (0 to {vocabularySize - 1}).");
                }

                tokens = [.. ids];
            }
            else if (bound.MinimumTokens(input.Text ?? string.Empty) is var atLeast && atLeast > _options.ContextSize)
            {
                // Far past the context: refused before its tokenization would hold up every job behind it.
                return RefuseTooLong(job, i, $"at least {atLeast}");
            }
            else
            {
                tokens = [.. context.Tokenize(input.Text ?? string.Empty, addBos: true, special: false).Select(t => (int)t)];
            }

            if (tokens.Length == 0)
            {
                return Refuse(job, i, "has no tokens.");
            }

            if (tokens.Length > _options.ContextSize)
            {
                return RefuseTooLong(job, i, $"{tokens.Length}");
            }

            job.Tokens[i] = tokens;
            job.PromptTokens += tokens.Length;
        }

        return true;
    }

    private bool RefuseTooLong(EmbeddingJob job, int index, string tokens) =>
        Refuse(job, index, $"has {tokens} tokens; the embedding context holds at most {_options.ContextSize} (Embeddings:ContextSize).");

    /// <summary>Fails the job naming input <paramref name="index"/>: front ends put its name in front of the message.</summary>
    private static bool Refuse(EmbeddingJob job, int index, string message)
    {
        job.Fail(new GenerationException(GenerationErrorCode.InvalidRequest, message, GenerationField.Input) { FieldIndex = index });
        return false;
    }

    /// <summary>Packs the next inputs of the waiting jobs, in arrival order, into one decode and pools each.</summary>
    private void DecodeOneBatch(List<EmbeddingJob> pending, LLamaContext context, LLamaBatch batch)
    {
        batch.Clear();
        var placed = new List<(EmbeddingJob Job, int Input)>();
        var used = 0;
        foreach (var job in pending)
        {
            while (!job.Task.IsCompleted && job.Next < job.Inputs.Count)
            {
                var tokens = job.Tokens[job.Next];
                if (placed.Count == _options.MaxSequences || used + tokens.Length > _options.ContextSize)
                {
                    goto Full;
                }

                var sequence = (LLamaSeqId)placed.Count;
                for (var p = 0; p < tokens.Length; p++)
                {
                    batch.Add(tokens[p], p, sequence, true);
                }

                placed.Add((job, job.Next));
                job.Next++;
                used += tokens.Length;
            }
        }

        Full:
        if (placed.Count == 0)
        {
            return;
        }

        try
        {
            var result = context.NativeHandle.Decode(batch);
            if (result != DecodeResult.Ok)
            {
                throw new InvalidOperationException($"The embedding decode failed ({result}).");
            }

            _decodedTokens.Add(used);

            for (var s = 0; s < placed.Count; s++)
            {
                var pooled = context.NativeHandle.GetEmbeddingsSeq((LLamaSeqId)s);
                var vector = Normalized(pooled);

                placed[s].Job.Complete(placed[s].Input, vector);
            }
        }
        catch (Exception ex)
        {
            LogDecodeFailed(_logger, ex);
            foreach (var (job, _) in placed)
            {
                job.Fail(new GenerationException(GenerationErrorCode.Internal, "The embedding computation failed."));
            }
        }
        finally
        {
            context.NativeHandle.MemoryClear(true);
        }
    }

    /// <summary>The vector scaled to unit L2 norm (summed in double: thousands of squares lose precision in float).</summary>
    private static float[] Normalized(ReadOnlySpan<float> pooled)
    {
        var sum = 0.0;
        foreach (var value in pooled)
        {
            sum += (double)value * value;
        }

        var vector = pooled.ToArray();
        if (sum > 0)
        {
            var scale = 1.0 / Math.Sqrt(sum);
            for (var i = 0; i < vector.Length; i++)
            {
                vector[i] = (float)(vector[i] * scale);
            }
        }

        return vector;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedding model {ModelId} loaded: {Dimensions} dimensions, {Pooling} pooling")]
    private static partial void LogLoaded(ILogger logger, string modelId, int dimensions, string pooling);

    [LoggerMessage(Level = LogLevel.Error, Message = "Loading the embedding model {Path} failed")]
    private static partial void LogLoadFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "An embedding decode failed")]
    private static partial void LogDecodeFailed(ILogger logger, Exception exception);

    /// <summary>One request's inputs, filled in as their sequences are decoded.</summary>
    private sealed class EmbeddingJob
    {
        private readonly TaskCompletionSource<EmbeddingResult> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly float[]?[] _vectors;
        private readonly CancellationTokenRegistration _registration;
        private int _done;

        public EmbeddingJob(IReadOnlyList<EmbeddingInput> inputs, int? dimensions, CancellationToken cancellationToken)
        {
            Inputs = inputs;
            Dimensions = dimensions;
            Tokens = new int[inputs.Count][];
            _vectors = new float[inputs.Count][];
            _registration = cancellationToken.Register(() => _result.TrySetCanceled(cancellationToken));
        }

        public IReadOnlyList<EmbeddingInput> Inputs { get; }

        public int? Dimensions { get; }

        public int[][] Tokens { get; }

        public int PromptTokens { get; set; }

        /// <summary>The next input to place in a batch.</summary>
        public int Next { get; set; }

        public Task<EmbeddingResult> Task => _result.Task;

        public void Complete(int input, float[] vector)
        {
            _vectors[input] = vector;
            if (++_done == _vectors.Length && _result.TrySetResult(new EmbeddingResult(_vectors!, PromptTokens)))
            {
                _registration.Dispose();
            }
        }

        public void Fail(Exception error)
        {
            if (_result.TrySetException(error))
            {
                _registration.Dispose();
            }
        }
    }
}
