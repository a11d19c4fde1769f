using LlmServer.Engine.Hosting;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LlmServer.Benchmarks;

/// <summary>The engine as the host builds it, started and loaded, without a host around it.</summary>
internal static class BenchmarkEngine
{
    public static async Task<LlmEngine> StartAsync(ModelOptions model, SchedulerOptions scheduler, KvCacheOptions? kvCache = null)
    {
        var engine = new LlmEngine(Options.Create(model), Options.Create(scheduler), TimeProvider.System, NullLoggerFactory.Instance, new NoServices(kvCache));
        await engine.StartAsync(CancellationToken.None);
        var state = await engine.WaitForStateChangeAsync(EngineState.Loading);
        return state == EngineState.Ready ? engine : throw new InvalidOperationException("The model did not load: " + state);
    }

    public static async Task StopAsync(LlmEngine engine)
    {
        await engine.StopAsync(CancellationToken.None);
        engine.Dispose();
    }

    /// <summary>No services but the disk KV cache's options, when given.</summary>
    private sealed class NoServices(KvCacheOptions? kvCache) : IServiceProvider
    {
        public object? GetService(Type serviceType) =>
            kvCache is not null && serviceType == typeof(IOptions<KvCacheOptions>) ? Options.Create(kvCache) : null;
    }
}
