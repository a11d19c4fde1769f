using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Lifecycle;

/// <summary>
/// Drains the engine when the host stops (SIGTERM, Ctrl+C): from <see cref="IHostApplicationLifetime.ApplicationStopping"/>
/// on, new generations are refused (503) while running ones get up to <c>Server:DrainSeconds</c> to finish; the rest
/// are cancelled. Registered after the engine, so the engine stops only once the drain is over.
/// </summary>
internal sealed partial class GracefulShutdown(
    ITextGenerator generator,
    IHostApplicationLifetime lifetime,
    IOptions<ServerOptions> options,
    ILogger<GracefulShutdown> logger) : IHostedService, IDisposable
{
    private readonly Lock _gate = new();
    private CancellationTokenRegistration _stoppingRegistration;
    private Task? _drain;

    /// <summary>True from the moment the drain begins; readiness and the API answer 503 from then on.</summary>
    public bool IsDraining
    {
        get
        {
            lock (_gate)
            {
                return _drain is not null;
            }
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stoppingRegistration = lifetime.ApplicationStopping.Register(() => BeginDrain());
        return Task.CompletedTask;
    }

    /// <summary>Starts the drain once; later calls return the same task.</summary>
    public Task BeginDrain()
    {
        lock (_gate)
        {
            return _drain ??= DrainAsync();
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await BeginDrain().WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            LogShutdownTimeout(logger);
        }
    }

    public void Dispose() => _stoppingRegistration.Dispose();

    private async Task DrainAsync()
    {
        // Leave the caller (the ApplicationStopping callback) at once; the drain runs beside the host's shutdown.
        await Task.Yield();
        var timeout = TimeSpan.FromSeconds(options.Value.DrainSeconds);
        var status = generator.GetStatus();
        LogDrainStarted(logger, status.Running, status.Waiting, timeout.TotalSeconds);
        try
        {
            await generator.DrainAsync(timeout, CancellationToken.None);
            LogDrained(logger);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A failed drain must not turn a clean stop into a crash; the engine's own stop cancels what is left.
            LogDrainFailed(logger, ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shutting down: refusing new generations, letting {Running} running and {Waiting} queued finish for up to {Seconds} s.")]
    private static partial void LogDrainStarted(ILogger logger, int running, int waiting, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Drained: every generation has ended.")]
    private static partial void LogDrained(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Draining the engine failed.")]
    private static partial void LogDrainFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The host's shutdown timeout ran out before the drain ended.")]
    private static partial void LogShutdownTimeout(ILogger logger);
}
