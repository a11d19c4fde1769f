using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>
/// The sessions' generations: at most one running per session, and each finished one kept for the resume grace
/// period so a client that dropped just before the last event still gets it.
/// </summary>
internal sealed class GenerationRegistry : IDisposable
{
    private readonly ConcurrentDictionary<string, GenerationRun> _running = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, GenerationRun> _recent = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<GenerationRun, Task> _pumps = new();
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _resumeGrace;

    public GenerationRegistry(IOptions<SessionOptions> options, TimeProvider timeProvider)
    {
        _timeProvider = timeProvider;
        _resumeGrace = options.Value.ResumeGrace;
    }

    public bool IsGenerating(string sessionId) => _running.ContainsKey(sessionId);

    /// <summary>The sessions generating now (a snapshot).</summary>
    public HashSet<string> RunningSessions() => new(_running.Keys, StringComparer.Ordinal);

    /// <summary>A new run for the session, or null when one is already running there.</summary>
    public GenerationRun? TryBegin(string sessionId)
    {
        var run = new GenerationRun(sessionId, _timeProvider, _resumeGrace);
        if (_running.TryAdd(sessionId, run))
        {
            return run;
        }

        run.Dispose();
        return null;
    }

    /// <summary>
    /// Forgets a run that never started (the engine or the store refused its turn), and ends it, so a delete or
    /// stop that found it while it was being refused goes on.
    /// </summary>
    public void Abandon(GenerationRun run)
    {
        _running.TryRemove(new KeyValuePair<string, GenerationRun>(run.SessionId, run));
        run.Abandon();
        run.Dispose();
    }

    /// <summary>The run now streams; the previous run of the session can no longer be resumed.</summary>
    public void Started(GenerationRun run, Func<Task> pump)
    {
        Forget(run.SessionId);

        // Tracked before it starts, so a pump that ends at once still finds (and removes) its own entry.
        var task = new Task<Task>(pump);
        _pumps[run] = task.Unwrap();
        task.Start(TaskScheduler.Default);
    }

    /// <summary>
    /// The run's answer is stored: it stops counting as running and stays resumable for the grace period. Call
    /// before publishing its last event.
    /// </summary>
    public void Finished(GenerationRun run)
    {
        // Resumable as a recent run before it stops counting as running, so a resume never falls in between.
        _recent[run.SessionId] = run;
        _running.TryRemove(new KeyValuePair<string, GenerationRun>(run.SessionId, run));
        run.RetainFor(() =>
        {
            if (_recent.TryRemove(new KeyValuePair<string, GenerationRun>(run.SessionId, run)))
            {
                run.Dispose();
            }
        });
        _pumps.TryRemove(run, out _);
    }

    /// <summary>The session's running generation, else its recently finished one.</summary>
    public GenerationRun? Find(string sessionId) =>
        _running.TryGetValue(sessionId, out var run) || _recent.TryGetValue(sessionId, out run) ? run : null;

    /// <summary>The session's running generation, or null.</summary>
    public GenerationRun? Running(string sessionId) => _running.TryGetValue(sessionId, out var run) ? run : null;

    public void Stop(string sessionId)
    {
        if (_running.TryGetValue(sessionId, out var run))
        {
            run.Stop();
        }
    }

    /// <summary>Stops the session's generation and waits until its answer is stored.</summary>
    public async Task StopAndWaitAsync(string sessionId, CancellationToken cancellationToken)
    {
        if (_running.TryGetValue(sessionId, out var run))
        {
            run.Stop();
            await run.Finished.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Drops the session's finished run (the session was deleted, or a new turn started).</summary>
    public void Forget(string sessionId)
    {
        if (_recent.TryRemove(sessionId, out var recent))
        {
            recent.Dispose();
        }
    }

    /// <summary>Stops every generation and waits until each has stored its answer (shutdown).</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        foreach (var run in _running.Values)
        {
            run.Stop();
        }

        await Task.WhenAll(_pumps.Values).WaitAsync(cancellationToken);
    }

    public void Dispose()
    {
        foreach (var run in _recent.Values)
        {
            run.Dispose();
        }

        foreach (var run in _running.Values)
        {
            run.Dispose();
        }
    }
}
