using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using System.Text;
using LLama;
using LLama.Native;
using LlmServer.Engine.Generation;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Models;
using LlmServer.Engine.Prompting;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Text;
using LlmServer.Engine.Threading;
using LlmServer.Engine.Tools;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Hosting;

/// <summary>
/// Loads the model on the scheduler's own thread when the host starts (so the host, and its health endpoint,
/// come up at once) and serves <see cref="ITextGenerator"/> once it is loaded.
/// </summary>
internal sealed partial class LlmEngine : ITextGenerator, IHostedService, IDisposable
{
    private readonly ModelOptions _modelOptions;
    private readonly SchedulerOptions _schedulerOptions;
    private readonly TimeProvider _time;
    private readonly ILogger<LlmEngine> _logger;
    private readonly ILoggerFactory _loggerFactory;
    private readonly IMeterFactory? _meterFactory;
    private readonly KvCacheOptions? _kvCacheOptions;
    private readonly IEnumerable<IStepObserver>? _stepObservers;
    private readonly ThreadingMetrics _threadingMetrics;
    private readonly BackendDecorator? _decorator;
    private InferenceScheduler? _scheduler;
    private ChatPromptFormatter? _formatter;
    private ToolCalling? _toolCalling;
    private ITokenVocabulary? _vocabulary;
    private MarkerTokens? _markerTokens;
    private volatile ModelInfo? _model;
    private volatile int _state = (int)EngineState.Loading;
    private string _openMp = string.Empty;
    private readonly DecodeThreadController _decodeThreads;
    private IDisposable? _nativeLog;
    private volatile DiskKvCache? _diskCache;

    // Signalled on every change of _state, after the change: see WaitForStateChangeAsync.
    private readonly ChangeSignal _stateChanged = new();

    public LlmEngine(
        IOptions<ModelOptions> modelOptions,
        IOptions<SchedulerOptions> schedulerOptions,
        TimeProvider time,
        ILoggerFactory loggerFactory,
        IServiceProvider services)
    {
        _modelOptions = modelOptions.Value;
        _schedulerOptions = schedulerOptions.Value;
        _time = time;
        _decodeThreads = new DecodeThreadController(time);
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<LlmEngine>();
        _meterFactory = services.GetService(typeof(IMeterFactory)) as IMeterFactory;
        _kvCacheOptions = (services.GetService(typeof(IOptions<KvCacheOptions>)) as IOptions<KvCacheOptions>)?.Value;
        _stepObservers = services.GetService(typeof(IEnumerable<IStepObserver>)) as IEnumerable<IStepObserver>;
        _threadingMetrics = new ThreadingMetrics(() => _model?.Backend.Threading, _meterFactory);
        _decorator = services.GetService(typeof(BackendDecorator)) as BackendDecorator;
    }

    public EngineState State => (EngineState)_state;

    public Exception? LoadFailure { get; private set; }

    public ModelInfo? Model => _model;

    public async Task<EngineState> WaitForStateChangeAsync(EngineState state, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            // The signal is read before the state: a change after this read completes it.
            var changed = _stateChanged.Next;
            var current = State;
            if (current != state)
            {
                return current;
            }

            await changed.WaitAsync(cancellationToken);
        }
    }

    /// <summary>
    /// The disk KV cache the scheduler opened once the model loaded (null when disabled or unavailable), and null
    /// again once the engine stops or its loop dies: the scheduler disposes it on its way out.
    /// </summary>
    internal DiskKvCache? DiskCache => _diskCache;

    public SchedulerStatus GetStatus() =>
        _scheduler?.GetStatus() ?? new SchedulerStatus(_schedulerOptions.Slots, 0, 0, 0, 0, 0, false, null, 0);

    public string ApplyChatTemplate(IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, bool addAssistantPrompt = true)
    {
        using (UseModel())
        {
            return _formatter!.Format(messages, tools, addAssistantPrompt);
        }
    }

    public string RenderPrompt(GenerationRequest request)
    {
        using (UseModel())
        {
            GenerationRequestValidator.Validate(request);
            if (request.Messages is null)
            {
                return request.Prompt!;
            }

            return FormatChat(request, _toolCalling!.Prepare(request));
        }
    }

    /// <summary>
    /// The prompt of a chat request: its messages (as tool calling rewrote them) with the assistant's turn opened;
    /// a continued final message is rendered after the opened turn, its text as it is.
    /// </summary>
    private string FormatChat(GenerationRequest request, PreparedToolRequest? tools)
    {
        var messages = tools?.PromptMessages ?? request.Messages!;
        var templateTools = tools?.TemplateTools ?? [];
        try
        {
            if (!request.ContinueFinalMessage)
            {
                return _formatter!.Format(messages, templateTools, addAssistantPrompt: true, request.EnableThinking);
            }

            return _formatter!.Format(messages.Take(messages.Count - 1).ToList(), templateTools, addAssistantPrompt: true, request.EnableThinking) + messages[^1].Content;
        }
        catch (GenerationException e) when (e.Field == GenerationField.ToolCallArguments && !ReferenceEquals(messages, request.Messages))
        {
            // Tool calling rewrote the messages (one call a message): the refusal names the call where the request has it.
            throw ChatPromptFormatter.ArgumentsNotJson(request.Messages!, e.Message);
        }
    }

    public IReadOnlyList<int> Tokenize(string text, bool addSpecial = false, bool parseSpecial = false)
    {
        using var use = UseModel();
        return use.Vocabulary.Tokenize(text, addSpecial, parseSpecial);
    }

    public TokenCount CountPromptTokens(string text, int limit)
    {
        using var use = UseModel();
        var vocabulary = use.Vocabulary;
        var atLeast = vocabulary.Bound.MinimumTokens(text);
        return atLeast > limit
            ? new TokenCount(atLeast, AtLeast: true)
            : new TokenCount(vocabulary.Tokenize(text, addSpecial: true, parseSpecial: true).Length, AtLeast: false);
    }

    public string Detokenize(IEnumerable<int> tokens)
    {
        using var use = UseModel();
        var vocabulary = use.Vocabulary;
        var ids = tokens.ToArray();
        foreach (var token in ids)
        {
            if (token < 0 || token >= vocabulary.Count)
            {
                throw new GenerationException(GenerationErrorCode.InvalidRequest, $"Token {token} is not in the vocabulary (0 to {vocabulary.Count - 1}).", GenerationField.Tokens);
            }
        }

        // Control tokens as their text, as llama-server's /detokenize and /tokenize's pieces render them.
        var decoder = new Utf8StreamDecoder();
        return decoder.Append(vocabulary.Utf8Of(ids, special: true)) + decoder.Flush();
    }

    public GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        if (State != EngineState.Ready)
        {
            throw NotReady();
        }

        using var use = UseModel();
        var scheduler = use.Scheduler;
        var arrived = _time.GetTimestamp();
        var isChat = request.Messages is not null;
        try
        {
            GenerationRequestValidator.Validate(request);
            ValidateLogitBias(request.Sampling, use.Vocabulary);
            var tools = _toolCalling!.Prepare(request);
            var submitted = tools?.Request ?? request;
            var text = isChat ? FormatChat(request, tools) : request.Prompt!;
            var thinkTags = isChat && _formatter!.Info.WritesThinkTags;
            var splitReasoning = request.SplitReasoning && thinkTags;
            var prefill = request.ContinueFinalMessage ? (tools?.PromptMessages ?? request.Messages!)[^1].Content?.Length ?? 0 : 0;
            var opensInPrompt = splitReasoning && ReasoningStage.OpensInPrompt(text, prefill);
            if (submitted.GrammarIsLazy)
            {
                submitted = WithTriggersWritten(submitted, use.MarkerTokens, splitReasoning, opensInPrompt);
            }

            submitted = WithPreservedTokens(submitted, use.MarkerTokens, tools?.Stage?.Format, thinkTags);

            scheduler.EnsurePromptFits(submitted, use.Vocabulary.Bound.MinimumTokens(text), atLeast: true);
            var stream = scheduler.Submit(submitted, TokenizePrompt(use, submitted, text, isChat), text, cancellationToken);
            if (splitReasoning)
            {
                // A grammar that holds from the first token (a schema, a required call) writes the answer itself, not
                // reasoning, even where the prompt opened the block: the call must reach the parser, the JSON the content.
                var constrainedFromStart = submitted.Grammar is not null && !submitted.GrammarIsLazy;
                stream.SplitReasoning(new ReasoningStage(submitted.Choices, !constrainedFromStart && opensInPrompt));
            }

            if (tools?.Stage is { } stage)
            {
                stream.ParseToolCalls(stage);
            }

            return stream;
        }
        catch (GenerationException ex) when (request.Priority == RequestPriority.Interactive)
        {
            scheduler.Metrics.Refused(GenAiOperation.Of(request), ex.Code, _time.GetElapsedTime(arrived));
            throw;
        }
    }

    /// <summary>
    /// The request's triggers as llama.cpp takes them. A call's marker that the vocabulary holds as one token triggers
    /// on that token: checked in O(1) a token, where llama.cpp matches a pattern against all the text generated at
    /// every token, on the scheduler thread. A token fires anywhere, though, and llama.cpp matches a pattern against
    /// the reasoning too: a call the model only thinks about must not start the grammar (it would force the call
    /// inside the block), so where a block is split off every trigger is a pattern anchored past it. Without a
    /// block, each pattern still holds only where its parser reads a call (a "{" after other words is text).
    /// </summary>
    internal static GenerationRequest WithTriggersWritten(GenerationRequest request, MarkerTokens markers, bool splitReasoning, bool opensInPrompt)
    {
        var tokens = new List<int>();
        var patterns = new List<string>(request.GrammarTriggers);
        foreach (var word in request.GrammarTriggerWords)
        {
            if (!splitReasoning && markers.TriggerToken(word) is { } token)
            {
                tokens.Add(token);
            }
            else
            {
                patterns.Add(ToolGrammar.WordPattern(word));
            }
        }

        return request with
        {
            GrammarTriggers = splitReasoning ? ReasoningStage.AnchorTriggers(patterns, opensInPrompt) : ToolGrammar.WholeText(patterns),
            GrammarTriggerWords = [],
            GrammarTriggerTokens = [.. request.GrammarTriggerTokens, .. tokens],
        };
    }

    /// <summary>
    /// The tokens the request's output renders as text: the markers of the calls it parses (<paramref name="format"/>,
    /// null for none) and the reasoning block's tags where the template writes them (split off or not, the block is
    /// text as the model wrote it), with those it preserves already and its trigger tokens: llama.cpp feeds the grammar
    /// a trigger token's text, which the parser must see too (llama.cpp refuses a trigger word that is not preserved).
    /// </summary>
    internal static GenerationRequest WithPreservedTokens(GenerationRequest request, MarkerTokens markers, ToolCallFormat? format, bool thinkTags)
    {
        var preserved = markers.Preserved(format, thinkTags);
        var more = request.PreservedTokens.Concat(request.GrammarTriggerTokens);
        return request with { PreservedTokens = more.All(preserved.Contains) ? preserved : preserved.Union(more).ToFrozenSet() };
    }

    private static void ValidateLogitBias(SamplingOptions sampling, ITokenVocabulary vocabulary)
    {
        var count = vocabulary.Count;
        if (sampling.LogitBias?.Keys.FirstOrDefault(token => token >= count, -1) is { } token and >= 0)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, $"names token {token}, beyond the model's vocabulary of {count}.", GenerationField.LogitBias);
        }
    }

    /// <summary>A session's prompt is tokenized onto the tokens its KV cache holds (see <see cref="SessionPromptTokenizer"/>).</summary>
    private static TokenizedPrompt TokenizePrompt(in ModelUse use, GenerationRequest request, string text, bool parseSpecial)
    {
        ResidentText? resident = null;
        if (request.SessionKey is not null)
        {
            use.Scheduler.TryGetResidentText(request.SessionKey, out resident);
        }

        return SessionPromptTokenizer.Tokenize(use.Vocabulary, resident, text, parseSpecial, use.Scheduler.MostPromptTokens(request));
    }

    public void EvictSession(string sessionKey) => _scheduler?.EvictSession(sessionKey);

    public async Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var scheduler = _scheduler;
        if (scheduler is null)
        {
            return;
        }

        // A drain while the model loads keeps it from turning ready: admission is closed either way.
        if (TryChangeState(EngineState.Ready, EngineState.Draining) || TryChangeState(EngineState.Loading, EngineState.Draining))
        {
            LogDraining(_logger, scheduler.InFlight, timeout.TotalSeconds);
        }

        await scheduler.DrainAsync(timeout, cancellationToken);
    }

    /// <summary>Completes with true once no request is in flight, with false when <paramref name="timeout"/> passes first (see <see cref="InferenceScheduler.WaitForIdleAsync"/>).</summary>
    internal Task<bool> WaitForIdleAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        _scheduler?.WaitForIdleAsync(timeout, cancellationToken) ?? Task.FromResult(true);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Before anything loads the native backend: libgomp reads its settings once, when it loads.
        _openMp = OpenMpTuning.Apply();
        _nativeLog ??= NativeLogSink.Attach(_loggerFactory);
        var scheduler = new InferenceScheduler(CreateBackend, _schedulerOptions, _time, _loggerFactory.CreateLogger<InferenceScheduler>(), _meterFactory, [.. _stepObservers ?? [], _decodeThreads], OpenDiskCache, _modelOptions.Path is null ? null : ModelInfo.IdOf(_modelOptions));
        _scheduler = scheduler;
        scheduler.Start();
        _ = scheduler.Started.ContinueWith(OnSchedulerStarted, TaskScheduler.Default);
        _ = scheduler.Stopped.ContinueWith(_ => OnSchedulerStopped(), TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var scheduler = _scheduler;
        if (scheduler is null)
        {
            return;
        }

        ChangeState(EngineState.Stopped);
        scheduler.CancelAll();
        await Task.Run(scheduler.Dispose, CancellationToken.None);
        _diskCache = null;
    }

    public void Dispose()
    {
        _scheduler?.Dispose();
        _scheduler = null;
        _diskCache = null;
        _threadingMetrics.Dispose();
        _nativeLog?.Dispose();
    }

    /// <summary>Runs on the scheduler thread: the thread that will own the context also creates it.</summary>
    private IInferenceBackend CreateBackend()
    {
        var started = _time.GetTimestamp();
        var trainingContext = ReadTrainingContext();
        var threading = ModelLoader.PlanThreads(_modelOptions, _openMp);
        LogThreads(_logger, threading.ToString());
        var parameters = ModelLoader.CreateParameters(_modelOptions, _schedulerOptions, trainingContext, threading);
        var weights = LLamaWeights.LoadFromFile(parameters);
        LLamaContext? context = null;
        try
        {
            context = CreateContext(weights, parameters);
            var created = context;
            _decodeThreads.Attach(threading, threads => ApplyThreads(created, threading, threads));
            var backend = new LlamaInferenceBackend(weights, context, _schedulerOptions.Slots);
            var served = _decorator?.Wrap(backend) ?? backend;
            _vocabulary = served.Vocabulary;
            _markerTokens = new MarkerTokens(served.Vocabulary);
            _formatter = ChatPromptFormatter.Create(weights, _modelOptions, _time, e => LogTemplateUnusable(_logger, e.Message, _modelOptions.FallbackChatTemplate));

            // A template that renders tools gets them as they are, in its own call syntax; any other (the built-in
            // fallbacks included) gets them in the generic JSON form.
            var templateFormat = ToolCallFormats.Detect(_formatter.Info.Source);
            var capabilities = _formatter.Info.Capabilities;
            _toolCalling = new ToolCalling(templateFormat, templateRendersTools: capabilities?.SupportsTools == true, templateTakesParallelCalls: capabilities?.SupportsParallelToolCalls != false);
            var info = ModelLoader.Describe(weights, _modelOptions, _schedulerOptions.Slots, backend.SlotContextSize, parameters, threading) with
            {
                ChatTemplate = _formatter.Info,
                TemplateToolCallFormat = templateFormat,
                ToolCallFormat = _toolCalling.Format,
            };
            _model = info;
            LogBackend(_logger, info.Backend.Kind, info.Backend.Library, info.Backend.GpuLayers, info.Backend.Threads);
            LogKvCache(_logger, context.ContextSize, _schedulerOptions.KvCacheType, KvCacheMemory.Estimate(weights.Metadata, context.ContextSize, _schedulerOptions.KvCacheType) is { } kvBytes ? $"{kvBytes / (1024.0 * 1024.0):F1} MiB" : "unknown (the GGUF has per-layer head counts)", parameters.FlashAttention switch { true => "on", false => "off", null => "auto" });
            LogModel(_logger, info.Id, info.Architecture, info.ParameterCount, info.TrainingContextLength, info.VocabularySize, info.HasChatTemplate, _formatter.TemplateName, info.Slots, info.SlotContextLength, _time.GetElapsedTime(started).TotalMilliseconds);
            return served;
        }
        catch
        {
            context?.Dispose();
            weights.Dispose();
            throw;
        }
    }

    private LLamaContext CreateContext(LLamaWeights weights, LLama.Common.ModelParams parameters)
    {
        KvCacheMemory.EnsureFits(weights.Metadata, _schedulerOptions.KvCacheType);
        try
        {
            return weights.CreateContext(parameters);
        }
        catch (Exception ex) when (KvCacheType.IsQuantized(_schedulerOptions.KvCacheType) && ex is not OutOfMemoryException)
        {
            throw new InvalidOperationException(
                $"llama.cpp refused the context with Scheduler:KvCacheType '{_schedulerOptions.KvCacheType}': a quantized V cache needs flash attention, which this backend or model may not support. Use f16 (or q8_0 where flash attention works).",
                ex);
        }
    }

    /// <summary>Runs on the scheduler thread after the model loaded. A cache that cannot open costs warm restores, not the engine.</summary>
    private DiskKvCache? OpenDiskCache()
    {
        if (_kvCacheOptions is not { Enabled: true } options)
        {
            return null;
        }

        try
        {
            var identity = ModelIdentity.Compute(_modelOptions.Path!, _schedulerOptions.KvCacheType);
            _diskCache = new DiskKvCache(options, identity, _time, _loggerFactory.CreateLogger<DiskKvCache>());
            return _diskCache;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogDiskCacheUnavailable(_logger, options.ResolvedDirectory, ex);
            return null;
        }
    }

    /// <summary>On the scheduler thread, between decodes: prompt threads follow when they are automatic too.</summary>
    private void ApplyThreads(LLamaContext context, CpuThreading threading, int threads)
    {
        context.NativeHandle.GenerationThreads = threads;
        if (threading.BatchThreadsFollow)
        {
            context.NativeHandle.BatchThreads = Math.Min(threads, threading.BatchThreads);
        }

        LogThreadsChanged(_logger, threads, threading.Threads, threading.CpuShare);
    }

    private int ReadTrainingContext()
    {
        // The server checks the file before it starts (ModelPathResolver); an in-process host learns it here.
        if (string.IsNullOrWhiteSpace(_modelOptions.Path) || !File.Exists(_modelOptions.Path))
        {
            throw new FileNotFoundException(string.IsNullOrWhiteSpace(_modelOptions.Path) ? "Model:Path is not set." : $"Model:Path '{_modelOptions.Path}' does not exist.", _modelOptions.Path);
        }

        using var weights = ModelLoader.LoadVocabularyOnly(_modelOptions.Path!);
        return ModelLoader.TrainingContext(weights);
    }

    private void OnSchedulerStarted(Task started)
    {
        if (started.IsFaulted)
        {
            LoadFailure = started.Exception!.GetBaseException();
            LogLoadFailed(_logger, _modelOptions.Path ?? string.Empty, LoadFailure);
            ChangeState(EngineState.Faulted);
            return;
        }

        TryChangeState(EngineState.Loading, EngineState.Ready);
    }

    private void OnSchedulerStopped()
    {
        _diskCache = null;

        // A loop that ends while the engine should serve has died: readiness must say so.
        if (!TryChangeState(EngineState.Ready, EngineState.Faulted))
        {
            TryChangeState(EngineState.Draining, EngineState.Faulted);
        }
    }

    private void ChangeState(EngineState state)
    {
        if (Interlocked.Exchange(ref _state, (int)state) != (int)state)
        {
            _stateChanged.Signal();
        }
    }

    private bool TryChangeState(EngineState from, EngineState to)
    {
        if (Interlocked.CompareExchange(ref _state, (int)to, (int)from) != (int)from)
        {
            return false;
        }

        _stateChanged.Signal();
        return true;
    }

    /// <summary>
    /// The loaded model, for the caller to use until it disposes the use: the scheduler's loop, as it ends (the engine
    /// stopping, or the loop dying), frees the model only after the uses under way have ended, and a use asked for
    /// after that is refused here (<see cref="GenerationErrorCode.Unavailable"/>), never handed a freed model.
    /// </summary>
    private ModelUse UseModel()
    {
        if (State is EngineState.Ready or EngineState.Draining && _scheduler is { } scheduler && _vocabulary is { } vocabulary && _markerTokens is { } markerTokens && scheduler.BackendUsers.TryEnter())
        {
            return new ModelUse(scheduler, vocabulary, markerTokens);
        }

        throw NotReady();
    }

    private GenerationException NotReady() => State switch
    {
        EngineState.Loading => new GenerationException(GenerationErrorCode.Unavailable, "The model is loading. Retry shortly."),
        EngineState.Draining => new GenerationException(GenerationErrorCode.Unavailable, "The server is shutting down."),

        // Ready here: the loop has just died, and the state is about to say so.
        EngineState.Faulted or EngineState.Ready => new GenerationException(GenerationErrorCode.Unavailable, "The engine has failed; see the server log."),
        _ => new GenerationException(GenerationErrorCode.Unavailable, "The engine is stopped."),
    };

    /// <summary>A use of the loaded model (see <see cref="UseModel"/>): its vocabulary and its markers' tokens, and the scheduler serving it.</summary>
    private readonly struct ModelUse(InferenceScheduler scheduler, ITokenVocabulary vocabulary, MarkerTokens markerTokens) : IDisposable
    {
        public InferenceScheduler Scheduler => scheduler;

        public ITokenVocabulary Vocabulary => vocabulary;

        public MarkerTokens MarkerTokens => markerTokens;

        public void Dispose() => scheduler.BackendUsers.Exit();
    }

    [LoggerMessage(EventId = 1009, Level = LogLevel.Warning, Message = "The model's chat template does not parse ({Error}); using the fallback template '{Fallback}'.")]
    private static partial void LogTemplateUnusable(ILogger logger, string error, string fallback);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Native backend: {Kind} ({Library}), GPU layers {GpuLayers}, threads {Threads}")]
    private static partial void LogBackend(ILogger logger, string kind, string library, int gpuLayers, int threads);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Model {ModelId} loaded: {Architecture}, {Parameters} parameters, training context {TrainingContext}, vocabulary {Vocabulary}, chat template {HasTemplate} (using {Template}); {Slots} slots of {SlotContext} tokens; {ElapsedMs:F0} ms")]
    private static partial void LogModel(ILogger logger, string modelId, string architecture, ulong parameters, int trainingContext, int vocabulary, bool hasTemplate, string template, int slots, int slotContext, double elapsedMs);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "KV cache: {Cells} cells of {CacheType}, {Memory}; flash attention {FlashAttention}")]
    private static partial void LogKvCache(ILogger logger, uint cells, string cacheType, string memory, string flashAttention);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "The KV cache folder {Directory} cannot be used; sessions are prefilled after eviction")]
    private static partial void LogDiskCacheUnavailable(ILogger logger, string directory, Exception exception);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Critical, Message = "Loading model {Path} failed")]
    private static partial void LogLoadFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Draining: {InFlight} requests in flight, waiting up to {Seconds} s")]
    private static partial void LogDraining(ILogger logger, int inFlight, double seconds);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information, Message = "CPU threads: {Threading}")]
    private static partial void LogThreads(ILogger logger, string threading);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Information, Message = "Decode threads now {Threads} of {MaxThreads} (the decode thread got {CpuShare:P0} of a CPU)")]
    private static partial void LogThreadsChanged(ILogger logger, int threads, int maxThreads, double cpuShare);
}

