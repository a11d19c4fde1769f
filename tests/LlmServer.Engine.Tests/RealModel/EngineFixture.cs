using LlmServer.Engine.Hosting;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>A started engine on a real model, as the host builds it.</summary>
internal static class RealEngine
{
    public static async Task<LlmEngine> StartAsync(
        string modelPath,
        int slots = 4,
        int contextSize = 4096,
        int budget = 512,
        bool prefixReuse = true,
        int maxQueue = 64,
        int targetStepMs = 80,
        IStepObserver? stepObserver = null,
        string? kvCacheDirectory = null,
        string kvCacheType = "f16",
        bool warmSlide = false,
        ILoggerFactory? loggerFactory = null,
        BackendDecorator? decorator = null)
    {
        var engine = Create(
            modelPath,
            new SchedulerOptions { Slots = slots, ContextSize = contextSize, StepTokenBudget = budget, PrefixReuse = prefixReuse, MaxQueue = maxQueue, TargetStepMs = targetStepMs, KvCacheType = kvCacheType, WarmSlide = warmSlide },
            stepObserver,
            kvCacheDirectory,
            loggerFactory,
            decorator);
        await engine.StartAsync(CancellationToken.None);
        using var loading = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Assert.Equal(EngineState.Ready, await engine.WaitForStateChangeAsync(EngineState.Loading, loading.Token));
        return engine;
    }

    /// <summary>An engine on <paramref name="modelPath"/>, not started; its backend decorated by <paramref name="decorator"/> when given.</summary>
    public static LlmEngine Create(
        string modelPath,
        SchedulerOptions? scheduler = null,
        IStepObserver? stepObserver = null,
        string? kvCacheDirectory = null,
        ILoggerFactory? loggerFactory = null,
        BackendDecorator? decorator = null) =>
        new(
            // One thread each: many engines share the test machine, and idle OpenMP workers spin.
            Options.Create(new ModelOptions { Path = modelPath, Threads = 1, BatchThreads = 1 }),
            Options.Create(scheduler ?? new SchedulerOptions { Slots = 1, ContextSize = 1024 }),
            TimeProvider.System,
            loggerFactory ?? NullLoggerFactory.Instance,
            new EngineServices(stepObserver, kvCacheDirectory, decorator));

    /// <summary>Waits (bounded, never asserted as a time) for the engine's idle signal: nothing running or queued.</summary>
    public static async Task WaitUntilIdleAsync(LlmEngine engine) =>
        Assert.True(await engine.WaitForIdleAsync(TimeSpan.FromSeconds(60)), "the engine did not become idle");

    /// <summary>The few services a test engine takes: a step observer, the disk KV cache's options when a folder is given, a backend decorator.</summary>
    private sealed class EngineServices(IStepObserver? observer, string? kvCacheDirectory, BackendDecorator? decorator) : IServiceProvider
    {
        public object? GetService(Type serviceType) =>
            serviceType == typeof(IEnumerable<IStepObserver>) && observer is not null ? new[] { observer }
            : serviceType == typeof(IOptions<KvCacheOptions>) && kvCacheDirectory is not null ? Options.Create(new KvCacheOptions { KvCacheDirectory = kvCacheDirectory })
            : serviceType == typeof(BackendDecorator) ? decorator
            : null;
    }
}

/// <summary>One stories260K engine shared by a test class; its step <see cref="Gate"/> is open unless a test closes it.</summary>
public sealed class StoriesEngineFixture : IAsyncLifetime
{
    internal LlmEngine Engine { get; private set; } = null!;

    internal StepGate Gate { get; } = new();

    public async Task InitializeAsync() => Engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 8, contextSize: 8192, stepObserver: Gate);

    public async Task DisposeAsync()
    {
        await Engine.StopAsync(CancellationToken.None);
        Engine.Dispose();
    }
}
