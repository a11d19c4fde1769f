using LlmServer.Engine.Generation;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Lifecycle;

/// <summary>
/// The drain: from <see cref="BeginDrain"/> on, new generations are refused (503) while running ones get up to
/// <c>Server:DrainSeconds</c> to finish; the rest are cancelled. It ends once the engine is idle and no API request
/// or hub stream that began before it is still being answered (<see cref="TrackWork"/>), so what a generation wrote
/// reaches its client before the host stops; those still being answered when its time is up (a client that reads
/// nothing) are cut, so the drain ends within <c>Server:DrainSeconds</c> and a few seconds. <see cref="DrainingLifetime"/> begins it on SIGTERM/Ctrl+C and stops
/// the host when it ends; a host stopped any other way drains here on <see cref="IHostApplicationLifetime.ApplicationStopping"/>.
/// Registered after the engine, so the engine stops only once the drain is over.
/// </summary>
internal sealed partial class GracefulShutdown : IHostedService, IDisposable
{
    private readonly ITextGenerator _generator;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<GracefulShutdown> _logger;

    // The engine refuses new work synchronously inside DrainAsync, so once BeginDrain returns nothing more is admitted.
    private readonly Lazy<Task> _drain;
    private readonly CancellationTokenSource _cutShort = new();
    private readonly CancellationTokenSource _drainStarted = new();
    private readonly CancellationTokenSource _cutFrontEnds = new();
    private readonly TaskCompletionSource _frontEndsIdle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenRegistration _stoppingRegistration;
    private int _work;
    private int _draining;

    public GracefulShutdown(ITextGenerator generator, IHostApplicationLifetime lifetime, IOptions<ServerOptions> options, TimeProvider time, ILogger<GracefulShutdown> logger)
    {
        _generator = generator;
        _lifetime = lifetime;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _drain = new Lazy<Task>(DrainAsync, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>True from the moment the drain begins; readiness and the API answer 503 from then on.</summary>
    public bool IsDraining => Volatile.Read(ref _draining) == 1;

    /// <summary>Cancelled when the drain begins (after admission closed): front ends close what holds no work.</summary>
    public CancellationToken DrainStarted => _drainStarted.Token;

    /// <summary>Starts the drain once; later calls return the same task.</summary>
    public Task BeginDrain() => _drain.Value;

    /// <summary>
    /// Ends the drain now: what still runs is cancelled (as when <c>Server:DrainSeconds</c> runs out) and the drain
    /// stops waiting for the front ends. Begins the drain first if it has not begun.
    /// </summary>
    public Task CutShort()
    {
        var drain = BeginDrain();
        if (!_cutShort.IsCancellationRequested)
        {
            LogCutShort(_logger);
            _cutShort.Cancel();
        }

        return drain;
    }

    /// <summary>
    /// Counts an API request or hub invocation being answered until the returned handle is disposed; the drain waits
    /// for those counted when it began (or, admitted just before, while it began) to end, and calls
    /// <paramref name="cut"/> (which aborts its connection) for each one still counted when the drain's time is up.
    /// </summary>
    public WorkHandle TrackWork(Action cut)
    {
        Interlocked.Increment(ref _work);
        return new WorkHandle(this, _cutFrontEnds.Token.Register(cut));
    }

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

    public void Dispose()
    {
        _stoppingRegistration.Dispose();
        _cutShort.Dispose();
        _drainStarted.Dispose();
        _cutFrontEnds.Dispose();
    }

    private void EndWork()
    {
        // Decrement, then read the flag; the drain sets the flag, then reads the count (both fenced): the last end
        // of work during a drain always sees it and releases the wait.
        if (Interlocked.Decrement(ref _work) == 0 && IsDraining)
        {
            _frontEndsIdle.TrySetResult();
        }
    }

    private async Task DrainAsync()
    {
        Interlocked.Exchange(ref _draining, 1);
        if (Volatile.Read(ref _work) == 0)
        {
            _frontEndsIdle.TrySetResult();
        }

        await _drainStarted.CancelAsync();

        var started = _time.GetTimestamp();
        var timeout = TimeSpan.FromSeconds(_options.DrainSeconds);
        var status = _generator.GetStatus();
        LogDrainStarted(_logger, status.Running, status.Waiting, timeout.TotalSeconds);
        try
        {
            try
            {
                await _generator.DrainAsync(timeout, _cutShort.Token);
            }
            catch (OperationCanceledException) when (_cutShort.IsCancellationRequested)
            {
                // A drain of no time cancels what runs and waits briefly for it to end, as a drain past its time does.
                await _generator.DrainAsync(TimeSpan.Zero, CancellationToken.None);
            }

            // What the engine finished may still be on its way to clients (a stream's last events, a stored answer).
            var left = timeout - _time.GetElapsedTime(started);
            // Cut short, what the engine cancelled still gets the grace to tell its client so before being cut off.
            if (!await WaitForFrontEndsAsync(left > FrontEndGrace ? left : FrontEndGrace, _cutShort.Token)
                && (!_cutShort.IsCancellationRequested || !await WaitForFrontEndsAsync(FrontEndGrace, CancellationToken.None)))
            {
                // Left alone, the host's stop would wait its whole timeout for them (a stalled client holds its request).
                LogFrontEndsCut(_logger, Volatile.Read(ref _work));
                await _cutFrontEnds.CancelAsync();
                if (!await WaitForFrontEndsAsync(FrontEndGrace, CancellationToken.None))
                {
                    LogFrontEndsLeft(_logger, Volatile.Read(ref _work));
                }
            }

            LogDrained(_logger);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A failed drain must not turn a clean stop into a crash; the engine's own stop cancels what is left.
            LogDrainFailed(_logger, ex);
        }
    }

    /// <summary>How long answers get to reach their clients once the engine has cancelled what ran.</summary>
    private static TimeSpan FrontEndGrace { get; } = TimeSpan.FromSeconds(5);

    private async Task<bool> WaitForFrontEndsAsync(TimeSpan within, CancellationToken cancellationToken)
    {
        try
        {
            await _frontEndsIdle.Task.WaitAsync(within, _time, cancellationToken);
            return true;
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>One counted piece of front-end work; disposing it ends it (once).</summary>
    internal sealed class WorkHandle(GracefulShutdown owner, CancellationTokenRegistration cut) : IDisposable
    {
        private int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                cut.Dispose();
                owner.EndWork();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shutting down: refusing new generations, letting {Running} running and {Waiting} queued finish for up to {Seconds} s.")]
    private static partial void LogDrainStarted(ILogger logger, int running, int waiting, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "The drain is over: no generation is running.")]
    private static partial void LogDrained(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stopping at once: cancelling what still runs.")]
    private static partial void LogCutShort(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The drain's time is up: closing the connections of {Count} API requests or hub streams still being answered.")]
    private static partial void LogFrontEndsCut(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The drain ends with {Count} API requests or hub streams still being answered.")]
    private static partial void LogFrontEndsLeft(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Draining the engine failed.")]
    private static partial void LogDrainFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The host's shutdown timeout ran out before the drain ended.")]
    private static partial void LogShutdownTimeout(ILogger logger);
}
