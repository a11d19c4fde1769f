using LlmServer.Engine.Generation;
using LlmServer.Engine.Sampling;
using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Turns a decoded step into output (vLLM's <c>update_from_output()</c>): records the decoded tokens in their slots,
/// then for every sequence with logits samples the next token, detokenizes it, matches stop sequences, computes
/// logprobs and publishes text to the request's stream; and finishes choices with their usage and timings.
/// </summary>
internal sealed partial class OutputProcessor(IInferenceBackend backend, SlotTable slots, SchedulerMetrics metrics, TimeProvider time, ILogger logger)
{
    /// <summary>Processes the output of a plan that decoded successfully at <paramref name="now"/>.</summary>
    public void Process(StepPlan plan, long now)
    {
        foreach (var (request, choice) in plan.Tokens)
        {
            slots[choice.Slot].Tokens.Add(choice.PendingToken);
            choice.Position++;
            SampleSafely(request, choice, now);
        }

        foreach (var chunk in plan.Chunks)
        {
            var request = chunk.Request;
            slots[chunk.Slot].Tokens.AddRange(request.Prefill.AsSpan(chunk.Start, chunk.Count));
            request.Prefilled += chunk.Count;
            if (!chunk.CompletesPrompt)
            {
                continue;
            }

            if (request.IsResuming)
            {
                // A preempted request is back where it was: its pending token, sampled before, decodes next.
                request.IsResuming = false;
                var resumed = request.Choices[0];
                resumed.Position = request.Prefill.Length;
                resumed.IsGenerating = true;
                continue;
            }

            request.PrefillDoneAt = now;
            slots.ForkPrompt(request);
            foreach (var choice in request.Choices)
            {
                choice.Position = request.PromptTokens.Length;
                SampleSafely(request, choice, now);
            }
        }
    }

    /// <summary>Ends a choice: flushes its held-back text, then writes its completion with usage and timings.</summary>
    public void Finish(ScheduledRequest request, ChoiceState choice, FinishReason reason, GenerationError? error)
    {
        if (choice.IsDone)
        {
            return;
        }

        choice.IsDone = true;
        choice.IsGenerating = false;
        if (reason != FinishReason.Error && choice.StopMatcher.Matched is null)
        {
            // Text held back for a possible stop sequence or an unfinished character belongs to the answer, also when
            // the model ended it (end of generation) right after a stop sequence's first characters. Tokens without
            // text (a control token under ignore_eos) still bring their log-probabilities.
            var rest = choice.Decoder.Flush();
            var (emit, stopped) = choice.StopMatcher.Push(rest);
            emit += stopped ? string.Empty : choice.StopMatcher.Flush();
            if (stopped && reason == FinishReason.Length)
            {
                // The flushed remainder completed a stop sequence: the answer ended there.
                reason = FinishReason.Stop;
            }

            if (emit.Length > 0 || (!stopped && choice.UnemittedLogProbs is not null))
            {
                Publish(request, choice, emit, allLogProbs: !stopped);
            }
        }

        var now = time.GetTimestamp();
        var admitted = request.AdmittedAt == 0 ? now : request.AdmittedAt;
        var prefillDone = request.PrefillDoneAt == 0 ? now : request.PrefillDoneAt;
        var timings = new GenerationTimings(
            time.GetElapsedTime(request.ArrivedAt, admitted),
            time.GetElapsedTime(admitted, prefillDone),
            time.GetElapsedTime(prefillDone, now));
        var usage = new GenerationUsage(request.PromptTokens.Length, request.CachedTokens, choice.Generated);
        request.Events.Write(new GenerationCompleted(choice.Index, reason, usage, timings, error) { StopSequence = choice.StopMatcher.Matched });
        request.FinishedChoices++;
        choice.Sampler.Dispose();
        choice.FinishReason = reason;
        choice.Error = error;

        if (choice.Index == 0)
        {
            LogRequestFinished(logger, request.Id, reason.ToName(), request.PromptTokens.Length, request.CachedTokens, choice.Generated, timings.Queued.TotalMilliseconds, timings.Prefill.TotalMilliseconds, timings.Decode.TotalMilliseconds);
        }

        if (request.FinishedChoices == request.Choices.Length)
        {
            RecordFinished(request, now);
        }
    }

    /// <summary>
    /// A request's metrics, once its last choice ended: its outcome is the first choice's, unless a choice was
    /// cancelled or failed; its first token is the earliest of its choices'; its pace per output token is that of
    /// its longest choice (the choices decode in the same steps).
    /// </summary>
    private void RecordFinished(ScheduledRequest request, long now)
    {
        var choices = request.Choices;
        var outcome = choices.FirstOrDefault(c => c.FinishReason is FinishReason.Cancelled or FinishReason.Error) ?? choices[0];
        var firstTokenAt = choices.Where(c => c.FirstTokenAt != 0).Select(c => c.FirstTokenAt).DefaultIfEmpty(0).Min();
        var longest = choices.MaxBy(c => c.Sampled)!;
        metrics.Finished(new FinishedRequest(
            outcome.FinishReason,
            outcome.Error?.Code,
            GenAiOperation.Of(request.Request),
            request.IsBatch,
            request.PromptTokens.Length,
            time.GetElapsedTime(request.ArrivedAt, now),
            firstTokenAt == 0 ? null : time.GetElapsedTime(request.ArrivedAt, firstTokenAt),
            longest.Sampled > 1 ? time.GetElapsedTime(longest.FirstTokenAt, longest.LastTokenAt) / (longest.Sampled - 1) : null));
    }

    private static void Publish(ScheduledRequest request, ChoiceState choice, string text, bool allLogProbs = false)
    {
        request.Events.Write(new TextDelta(choice.Index, text, choice.UnemittedTokens, TakeLogProbs(choice, text, allLogProbs)));
        choice.UnemittedTokens = 0;
    }

    /// <summary>
    /// The log-probabilities of the tokens whose text is now all emitted. A token whose text is still held back (it may
    /// start a stop sequence, or ends inside a character) waits; so at a stop sequence, a token that writes any of it
    /// is left out with it, as llama.cpp leaves out the stop sequence's tokens.
    /// </summary>
    private static List<TokenLogProb>? TakeLogProbs(ChoiceState choice, string text, bool all)
    {
        choice.EmittedChars += text.Length;
        if (choice.UnemittedLogProbs is not { } pending)
        {
            return null;
        }

        var taken = pending.Count;
        if (!all)
        {
            taken = 0;
            while (taken < pending.Count && choice.UnemittedLogProbEnds[taken] <= choice.EmittedChars)
            {
                taken++;
            }
        }

        if (taken == 0)
        {
            return null;
        }

        choice.UnemittedLogProbEnds.RemoveRange(0, taken);
        if (taken == pending.Count)
        {
            choice.UnemittedLogProbs = null;
            return pending;
        }

        var result = pending.GetRange(0, taken);
        pending.RemoveRange(0, taken);
        return result;
    }

    private void SampleSafely(ScheduledRequest request, ChoiceState choice, long now)
    {
        if (choice.IsDone)
        {
            return;
        }

        try
        {
            Sample(request, choice, now);
        }
        catch (Exception ex)
        {
            // A failure in one request (sampler, grammar, ...) ends that request only.
            LogRequestFailed(logger, request.Id, ex);
            Finish(request, choice, FinishReason.Error, new GenerationError(GenerationErrorCode.Internal, ex.Message));
        }
    }

    private void Sample(ScheduledRequest request, ChoiceState choice, long now)
    {
        var token = choice.Sampler.Sample(backend, choice.BatchIndex);
        if (choice.FirstTokenAt == 0)
        {
            choice.FirstTokenAt = now;
            metrics.FirstToken(time.GetElapsedTime(request.ArrivedAt, now));
        }
        else
        {
            metrics.NextToken(time.GetElapsedTime(choice.LastTokenAt, now));
        }

        choice.LastTokenAt = now;
        choice.Sampled++;
        var vocabulary = backend.Vocabulary;
        if (!request.Request.IgnoreEos && vocabulary.IsEndOfGeneration(token))
        {
            Finish(request, choice, FinishReason.Stop, null);
            return;
        }

        choice.Generated++;
        metrics.GeneratedToken();
        choice.UnemittedTokens++;
        Span<byte> buffer = stackalloc byte[TokenBytes.StackPiece];
        var piece = vocabulary.PieceOf(token, buffer, request.Request.PreservedTokens.Contains(token));
        var text = choice.Decoder.Append(piece);
        choice.DecodedChars += text.Length;
        if (request.Request.LogProbs)
        {
            // Counted in characters, as the stop matcher holds text back: a token ending inside a character is complete
            // with the next one decoded (invalid bytes decode to one replacement character each, whatever their count).
            (choice.UnemittedLogProbs ??= []).Add(LogProbCalculator.Compute(backend, choice.BatchIndex, token, request.Request.TopLogProbs, request.Request.PreservedTokens));
            choice.UnemittedLogProbEnds.Add(choice.DecodedChars + (choice.Decoder.HasPending ? 1 : 0));
        }

        var (emit, stopped) = choice.StopMatcher.Push(text);
        if (emit.Length > 0)
        {
            Publish(request, choice, emit);
        }

        if (stopped)
        {
            Finish(request, choice, FinishReason.Stop, null);
            return;
        }

        // The next decode needs a free cell in the slot for this token.
        if (choice.Generated >= request.MaxTokens || choice.Position >= backend.SlotContextSize)
        {
            Finish(request, choice, FinishReason.Length, null);
            return;
        }

        choice.PendingToken = token;
        choice.IsGenerating = true;
    }

    [LoggerMessage(EventId = 1102, Level = LogLevel.Error, Message = "Request {RequestId} failed")]
    private static partial void LogRequestFailed(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(EventId = 1110, Level = LogLevel.Information, Message = "Request {RequestId} finished: {FinishReason}, prompt {PromptTokens} tokens ({CachedTokens} cached), completion {CompletionTokens} tokens, queued {QueuedMs:F1} ms, prefill {PrefillMs:F1} ms, decode {DecodeMs:F1} ms")]
    private static partial void LogRequestFinished(ILogger logger, string requestId, string finishReason, int promptTokens, int cachedTokens, int completionTokens, double queuedMs, double prefillMs, double decodeMs);
}
