using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>
/// With a shared store (PostgreSQL), stops this server's turns that a stop sent to another replica asked for
/// (<see cref="ISessionStore.RequestStopAsync"/>): it listens for the store's announcements and, on each, checks that
/// the request is still recorded with this server's lease of the session (a later turn clears it) before stopping the
/// generation, which then stores its answer as <c>cancelled</c> as a local stop does. After every (re)connection, and
/// every <see cref="SessionOptions.StopSweepSeconds"/> as a backstop, it checks all its running turns, so an announcement missed while it
/// was away is not lost; a check the store failed is tried again after <see cref="RetryDelay"/>.
/// </summary>
internal sealed partial class RemoteStopListener(
    ISessionStore store,
    GenerationRegistry registry,
    IOptions<SessionOptions> options,
    TimeProvider timeProvider,
    ILogger<RemoteStopListener> logger) : BackgroundService
{
    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    // Session ids to check; null: check every running turn. An id that finds the queue full asks for that instead.
    private readonly Channel<string?> _checks = Channel.CreateBounded<string?>(
        new BoundedChannelOptions(1024) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    private int _checkAll;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (store is not PostgresSessionStore shared)
        {
            return;
        }

        var checking = CheckAsync(stoppingToken);
        var sweeping = SweepAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await shared.ListenForStopsAsync(() => Enqueue(null), id => Enqueue(id), stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogListenFailed(e.Message);
                await Task.Delay(ReconnectDelay, timeProvider, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        await checking;
        await sweeping;
    }

    private async Task SweepAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(options.Value.StopSweep, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                Enqueue(null);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private async Task RetryAsync(string sessionId, CancellationToken cancellationToken)
    {
        await Task.Delay(RetryDelay, timeProvider, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (!cancellationToken.IsCancellationRequested)
        {
            Enqueue(sessionId);
        }
    }

    private void Enqueue(string? sessionId)
    {
        if (!_checks.Writer.TryWrite(sessionId))
        {
            Volatile.Write(ref _checkAll, 1);
        }
    }

    private async Task CheckAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var sessionId in _checks.Reader.ReadAllAsync(cancellationToken))
            {
                var all = sessionId is null || Interlocked.Exchange(ref _checkAll, 0) == 1;
                foreach (var id in all ? registry.RunningSessions() : [sessionId!])
                {
                    // The run is taken before the store is asked: the request found there is for this turn, and a turn
                    // that began since (its own request cleared) is not the one stopped.
                    var run = registry.Running(id);
                    try
                    {
                        if (run is not null && await store.IsStopRequestedAsync(id, cancellationToken))
                        {
                            run.Stop();
                            LogStopped(id);
                        }
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // The store is unreachable now: asked again shortly (while the turn still runs).
                        LogCheckFailed(id, e.Message);
                        _ = RetryAsync(id, cancellationToken);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down: the lifecycle stops every running turn itself.
        }
    }

    [LoggerMessage(EventId = 4120, Level = LogLevel.Information, Message = "Session {SessionId}: its turn was stopped from another replica.")]
    private partial void LogStopped(string sessionId);

    [LoggerMessage(EventId = 4121, Level = LogLevel.Warning, Message = "Listening for stop requests from other replicas failed ({Reason}); reconnecting.")]
    private partial void LogListenFailed(string reason);

    [LoggerMessage(EventId = 4122, Level = LogLevel.Warning, Message = "Session {SessionId}: checking for a stop request failed ({Reason}).")]
    private partial void LogCheckFailed(string sessionId, string reason);
}
