using System.Runtime.InteropServices;

namespace LlmServer.Operations.Lifecycle;

/// <summary>
/// The host's lifetime in place of ConsoleLifetime, which stops the host at the first SIGTERM or Ctrl+C: closing the
/// listener (so a router cannot tell a draining replica from a dead one) and, through ApplicationStopping, the hub
/// connections whose streams the drain is meant to finish. Here the first SIGINT, SIGQUIT or SIGTERM begins the drain
/// (<see cref="GracefulShutdown"/>) while the host keeps serving, and only its end calls
/// <see cref="IHostApplicationLifetime.StopApplication"/>; a second signal cancels what runs and stops at once.
/// </summary>
internal sealed partial class DrainingLifetime(
    GracefulShutdown shutdown,
    IHostApplicationLifetime lifetime,
    IHostEnvironment environment,
    ILogger<DrainingLifetime> logger) : IHostLifetime, IDisposable
{
    private PosixSignalRegistration[] _signals = [];
    private CancellationTokenRegistration _started;
    private int _stopRequests;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        _started = lifetime.ApplicationStarted.Register(() => LogStarted(logger, environment.EnvironmentName, environment.ContentRootPath));
        _signals =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
        ];
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// What a signal does (tests call it in place of one): the first begins the drain and stops the host when it
    /// ends; a later one cuts the drain short and stops the host now.
    /// </summary>
    public void RequestStop()
    {
        if (Interlocked.Increment(ref _stopRequests) == 1)
        {
            LogDraining(logger);

            // Admission closes before this returns (the drain's first steps are synchronous and brief).
            _ = StopAfterAsync(shutdown.BeginDrain());
            return;
        }

        _ = shutdown.CutShort();
        lifetime.StopApplication();
    }

    public void Dispose()
    {
        foreach (var signal in _signals)
        {
            signal.Dispose();
        }

        _started.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        // The process must not end here: the host ends it once it has stopped.
        context.Cancel = true;
        RequestStop();
    }

    private async Task StopAfterAsync(Task drain)
    {
        // The drain never throws (it logs its failures).
        await drain;
        lifetime.StopApplication();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Application started ({Environment}, content root {ContentRoot}). Press Ctrl+C to drain and stop, twice to stop at once.")]
    private static partial void LogStarted(ILogger logger, string environment, string contentRoot);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stop requested: draining while still listening; a second Ctrl+C or SIGTERM stops at once.")]
    private static partial void LogDraining(ILogger logger);
}
