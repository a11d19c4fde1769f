using LlmServer.Engine.Generation;

namespace LlmServer.Sessions;

/// <summary>
/// Reads one engine stream to its end, whoever listens: each token (of the answer, or of a reasoning model's
/// thinking) goes to the run's listeners and to the answer's checkpoints. The run's permit goes back as soon as the
/// engine is done with the generation (a slow store holds no generation permit); then the answer is stored, however
/// the generation ended, and the last event published.
/// </summary>
internal sealed partial class GenerationPump
{
    private readonly GenerationRegistry _registry;
    private readonly ITextGenerator _generator;
    private readonly ILogger<GenerationPump> _logger;

    public GenerationPump(GenerationRegistry registry, ITextGenerator generator, ILogger<GenerationPump> logger)
    {
        _registry = registry;
        _generator = generator;
        _logger = logger;
    }

    public async Task RunAsync(GenerationRun run, GenerationStream stream, AnswerRecorder answer, int contextStart)
    {
        GenerationCompleted? completed = null;
        string? failure = null;
        try
        {
            await foreach (var item in stream.ReadAllAsync(CancellationToken.None))
            {
                switch (item)
                {
                    case TextDelta { Choice: 0 } delta when delta.Text.Length > 0:
                        answer.Append(delta.Text);
                        run.Publish(seq => SessionWire.Delta(seq, delta.Text));
                        break;
                    case ReasoningDelta { Choice: 0 } thought when thought.Text.Length > 0:
                        answer.AppendReasoning(thought.Text);
                        run.Publish(seq => SessionWire.Reasoning(seq, thought.Text));
                        break;
                    case GenerationCompleted { Choice: 0 } done:
                        completed = done;
                        break;
                }
            }
        }
#pragma warning disable CA1031 // The pump must always store and publish an ending, whatever the engine threw.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogGenerationFailed(ex, run.SessionId);
            failure = "the generation failed inside the server";
        }
        finally
        {
            await stream.DisposeAsync();
            run.ReleasePermit();
        }

        try
        {
            if (!await answer.FinishAsync(completed, CancellationToken.None))
            {
                // Deleted while it ran: nothing to keep, and no KV to leave behind.
                EvictQuietly(run.SessionId);
            }
        }
#pragma warning disable CA1031 // Listeners must still get an ending when the store fails.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogStoreFailed(ex, run.SessionId);
            failure ??= "the assistant message could not be stored";
        }
        finally
        {
            answer.Dispose();
            _registry.Finished(run);
            run.Publish(seq => SessionWire.Ending(seq, completed, failure, contextStart), final: true);
            LogGenerationEnded(run.SessionId, (completed?.FinishReason ?? FinishReason.Error).ToName(), completed?.Usage.CompletionTokens ?? 0);
        }
    }

    /// <summary>Frees the session's KV slot; best effort, the scheduler reclaims idle slots anyway.</summary>
    public void EvictQuietly(string sessionId)
    {
        try
        {
            _generator.EvictSession(sessionId);
        }
#pragma warning disable CA1031 // Freeing the KV slot is best effort.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogEvictFailed(ex, sessionId);
        }
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "Session {SessionId}: generation ended ({FinishReason}, {CompletionTokens} tokens).")]
    private partial void LogGenerationEnded(string sessionId, string finishReason, int completionTokens);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Error, Message = "Session {SessionId}: the generation stream failed.")]
    private partial void LogGenerationFailed(Exception exception, string sessionId);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Error, Message = "Session {SessionId}: the assistant message could not be stored.")]
    private partial void LogStoreFailed(Exception exception, string sessionId);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Warning, Message = "Session {SessionId}: freeing its KV slot failed.")]
    private partial void LogEvictFailed(Exception exception, string sessionId);
}
