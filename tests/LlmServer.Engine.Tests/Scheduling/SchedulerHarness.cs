using System.Diagnostics.Metrics;
using LlmServer.Engine.Generation;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// A scheduler on a <see cref="FakeBackend"/>, stepped by the test (no thread), so every step is observable; its time
/// is the backend's <see cref="FakeBackend.Clock"/>.
/// </summary>
internal sealed class SchedulerHarness : IDisposable
{
    public SchedulerHarness(
        int slots = 2,
        int slotContext = 64,
        int maxQueue = 8,
        int budget = 16,
        bool prefixReuse = true,
        int targetStepMs = 80,
        int minPromptChunk = 4,
        int maxBatchQueue = 8,
        DiskKvCache? diskCache = null,
        bool canShift = true,
        double? minPromptShare = null,
        IMeterFactory? meterFactory = null,
        Action<SchedulerOptions>? configure = null,
        ILogger? logger = null)
    {
        var options = new SchedulerOptions
        {
            Slots = slots,
            ContextSize = slots * slotContext,
            MaxQueue = maxQueue,
            MaxBatchQueue = maxBatchQueue,
            StepTokenBudget = budget,
            PrefixReuse = prefixReuse,
            TargetStepMs = targetStepMs,
            MinPromptChunk = minPromptChunk,
        };
        options.MinPromptShare = minPromptShare ?? options.MinPromptShare;
        configure?.Invoke(options);
        Backend = new FakeBackend(slots, slotContext) { CanShift = canShift };
        Scheduler = new InferenceScheduler(
            () => Backend,
            options,
            Backend.Clock,
            logger ?? NullLogger.Instance,
            meterFactory,
            diskCacheFactory: diskCache is null ? null : () => diskCache);
        Scheduler.Initialize();
    }

    public FakeBackend Backend { get; }

    public InferenceScheduler Scheduler { get; }

    public GenerationStream Submit(
        string prompt,
        int maxTokens = 4,
        string? session = null,
        int choices = 1,
        IReadOnlyList<string>? stop = null,
        RequestPriority priority = RequestPriority.Interactive,
        CancellationToken cancellationToken = default) =>
        Scheduler.Submit(
            new GenerationRequest { Prompt = prompt, MaxTokens = maxTokens, SessionKey = session, Choices = choices, Stop = stop ?? [], Priority = priority },
            Backend.Vocabulary.Tokenize(prompt, false, false),
            cancellationToken);

    /// <summary>Steps until nothing is left to do (bounded).</summary>
    /// <summary>Steps the scheduler <paramref name="count"/> times (streams already running get that many tokens).</summary>
    public void Steps(int count)
    {
        for (var i = 0; i < count; i++)
        {
            Scheduler.Step();
        }
    }

    public int RunToIdle(int maxSteps = 1000)
    {
        var steps = 0;
        while (Scheduler.Step())
        {
            Assert.True(++steps < maxSteps, "the scheduler did not become idle");
        }

        return steps;
    }

    public static async Task<List<GenerationEvent>> ReadAvailableAsync(GenerationStream stream)
    {
        var events = new List<GenerationEvent>();
        await foreach (var item in stream.ReadAllAsync())
        {
            events.Add(item);
        }

        return events;
    }

    public void Dispose() => Scheduler.Dispose();
}
