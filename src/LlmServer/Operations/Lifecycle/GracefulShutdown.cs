using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Lifecycle;

/// <summary>
/// Drains the engine when the host stops (SIGTERM, Ctrl+C): from <see cref="IHostApplicationLifetime.ApplicationStopping"/>
/// on, new generations are refused (503) while running ones get up to <c>Server:DrainSeconds</c> to finish; the rest
/// are cancelled. Registered after the engine, so the engine stops only once the drain is over.
/// </summary>
internal sealed partial class GracefulShutdown : IHostedService, IDisposable
{
    private readonly ITextGenerator _generator;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ServerOptions _options;
    private readonly ILogger<GracefulShutdown> _logger;

    // The engine refuses new work synchronously inside DrainAsync, so once BeginDrain returns nothing more is admitted.
    private readonly Lazy<Task> _drain;
    private CancellationTokenRegistration _stoppingRegistration;

    public GracefulShutdown(ITextGenerator generator, IHostApplicationLifetime lifetime, IOptions<ServerOptions> options, ILogger<GracefulShutdown> logger)
    {
        _generator = generator;
        _lifetime = lifetime;
        _options = options.Value;
        _logger = logger;
        _drain = new Lazy<Task>(DrainAsync, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>True from the moment the drain begins; readiness and the API answer 503 from then on.</summary>
    public bool IsDraining => _drain.IsValueCreated;

    /// <summary>Starts the drain once; later calls return the same task.</summary>
    public Task BeginDrain() => _drain.Value;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stoppingRegistration = _lifetime.ApplicationStopping.Register(() => BeginDrain());
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await BeginDrain().WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            LogShutdownTimeout(_logger);
        }
    }

    public void Dispose() => _stoppingRegistration.Dispose();

    private async Task DrainAsync()
    {
        var timeout = TimeSpan.FromSeconds(_options.DrainSeconds);
        var status = _generator.GetStatus();
        LogDrainStarted(_logger, status.Running, status.Waiting, timeout.TotalSeconds);
        try
        {
            await _generator.DrainAsync(timeout, CancellationToken.None);
            LogDrained(_logger);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A failed drain must not turn a clean stop into a crash; the engine's own stop cancels what is left.
            LogDrainFailed(_logger, ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shutting down: refusing new generations, letting {Running} running and {Waiting} queued finish for up to {Seconds} s.")]
    private static partial void LogDrainStarted(ILogger logger, int running, int waiting, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "The drain is over: no generation is running.")]
    private static partial void LogDrained(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Draining the engine failed.")]
    private static partial void LogDrainFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The host's shutdown timeout ran out before the drain ended.")]
    private static partial void LogShutdownTimeout(ILogger logger);
}
