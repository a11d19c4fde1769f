using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using Microsoft.Extensions.Options;

namespace LlmServer.OpenAi;

/// <summary>What the chat and legacy completion endpoints share: ids, the streaming loop, and finish handling.</summary>
internal sealed class OpenAiResponder(TimeProvider timeProvider, IOptionsMonitor<OpenAiOptions> options, ILogger<OpenAiResponder> logger)
{
    private static readonly ConditionalWeakTable<ModelInfo, string> Fingerprints = [];

    public long UnixNow() => timeProvider.GetUtcNow().ToUnixTimeSeconds();

    public static string NewId(string prefix) => prefix + RandomNumberGenerator.GetHexString(24, lowercase: true);

    /// <summary>Stable for one model file and backend, as OpenAI's fingerprint is for one backend configuration.</summary>
    public static string Fingerprint(ModelInfo model) => Fingerprints.GetValue(model, static m =>
    {
        var identity = $"{m.Id}|{m.SizeInBytes}|{m.ParameterCount}|{m.Backend.Kind}|{m.Slots}|{m.SlotContextLength}";
        return "fp_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)).AsSpan(0, 5));
    });

    /// <summary>
    /// For a non-streamed result: a choice that failed or was cancelled fails the request. Returns false when the
    /// client went away (nothing to answer).
    /// </summary>
    public static bool EnsureSucceeded(IEnumerable<GenerationCompleted> completions, CancellationToken requestAborted)
    {
        foreach (var completion in completions)
        {
            if (completion.FinishReason == FinishReason.Cancelled && requestAborted.IsCancellationRequested)
            {
                return false;
            }

            if (!Succeeded(completion))
            {
                throw OpenAiErrors.FromCompletion(completion);
            }
        }

        return true;
    }

    /// <summary>
    /// Streams events as SSE: each choice's start, its text as it comes (flushed whenever the engine has nothing
    /// more ready; deltas already waiting are merged into one chunk), its finish, the usage chunk when asked, then <c>[DONE]</c>. Keep-alive comments go out while
    /// the request waits for its first token. A failed or cancelled choice ends the stream with one error event.
    /// </summary>
    public async Task StreamAsync(ChunkFormatter formatter, SseWriter sse, StreamSource source, bool includeUsage)
    {
        try
        {
            await StreamEventsAsync(formatter, sse, source, includeUsage);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The status line is gone; the stream's own error event is the only way left to tell the client.
            OpenAiLog.StreamBroke(logger, ex, source.RequestId);
            source.Cancel();
            if (!sse.IsClientGone)
            {
                formatter.WriteError(OpenAiErrors.StreamBroke().ToError());
                sse.WriteDone();
                await sse.FlushAsync();
            }
        }
    }

    private async Task StreamEventsAsync(ChunkFormatter formatter, SseWriter sse, StreamSource source, bool includeUsage)
    {
        for (var choice = 0; choice < source.Choices; choice++)
        {
            formatter.WriteStart(choice);
        }

        await sse.FlushAsync();
        var completionTokens = 0;
        var reasoningTokens = 0;
        var cachedTokens = 0;
        var failed = false;
        var pending = new PendingText();

        // A client that is behind gets the tokens waiting for it as one chunk, written and flushed once.
        await RelayAsync(
            source.Events,
            sse,
            sse.WriteKeepAlive,
            item =>
            {
                switch (item)
                {
                    case TextDelta delta when !failed && !sse.IsClientGone:
                        pending.Add(delta, formatter);
                        break;
                    case ReasoningDelta thought when !failed && !sse.IsClientGone && formatter is ChatChunkFormatter reasoningChat:
                        pending.Add(thought, reasoningChat);
                        break;
                    case ToolCallStarted call when !failed && !sse.IsClientGone && formatter is ChatChunkFormatter chat:
                        // Text held for a client that is behind was written before the call: it goes first.
                        pending.WriteTo(formatter);
                        chat.WriteToolCallStart(call);
                        break;
                    case ToolCallArgumentsDelta arguments when !failed && !sse.IsClientGone && formatter is ChatChunkFormatter chat:
                        pending.WriteTo(formatter);
                        chat.WriteToolCallArguments(arguments);
                        break;
                    case GenerationCompleted completion:
                        completionTokens += completion.Usage.CompletionTokens;
                        reasoningTokens += completion.Usage.ReasoningTokens;
                        cachedTokens += completion.Choice % source.ChoicesPerPrompt == 0 ? completion.Usage.CachedPromptTokens : 0;
                        if (failed || sse.IsClientGone)
                        {
                            pending.Clear();
                            break;
                        }

                        pending.WriteTo(formatter);
                        if (Succeeded(completion))
                        {
                            formatter.WriteFinish(completion.Choice, completion.FinishReason.ToName());
                        }
                        else
                        {
                            // The other choices cannot be reported after an error event; stop them.
                            failed = true;
                            var error = OpenAiErrors.FromCompletion(completion);
                            OpenAiLog.StreamFailed(logger, source.RequestId, error.Code ?? error.Type, error.Message);
                            formatter.WriteError(error.ToError());
                            source.Cancel();
                        }

                        break;
                }
            },
            beforeFlush: () => pending.WriteTo(formatter));

        if (!failed && !sse.IsClientGone)
        {
            pending.WriteTo(formatter);
        }

        if (sse.IsClientGone)
        {
            return;
        }

        if (includeUsage && !failed)
        {
            formatter.WriteUsage(new Usage(
                source.PromptTokens,
                completionTokens,
                source.PromptTokens + completionTokens,
                new PromptTokensDetails(cachedTokens))
            {
                CompletionTokensDetails = Usage.ReasoningDetails(reasoningTokens),
            });
        }

        sse.WriteDone();
        await sse.FlushAsync();
    }

    /// <summary>
    /// The streaming loop every SSE front end shares: hands each engine event to <paramref name="onEvent"/>,
    /// flushes whenever the engine has nothing more ready (after <paramref name="beforeFlush"/> wrote what was held
    /// back), and calls <paramref name="keepAlive"/> (then flushes) every <c>OpenAi:KeepAliveInterval</c> while the
    /// request waits for its first event, and on until its first token when that event is the admission
    /// (<see cref="RequestAdmitted"/>, which comes before the prompt's prefill).
    /// </summary>
    public async Task RelayAsync(IAsyncEnumerable<GenerationEvent> events, SseWriter sse, Action keepAlive, Action<GenerationEvent> onEvent, Action? beforeFlush = null)
    {
        var enumerator = events.GetAsyncEnumerator(CancellationToken.None);
        try
        {
            var hasEvent = await sse.MoveNextAsync(enumerator, options.CurrentValue.KeepAliveInterval, timeProvider, keepAlive);
            while (hasEvent && enumerator.Current is RequestAdmitted)
            {
                onEvent(enumerator.Current);
                await sse.FlushAsync();
                hasEvent = await sse.MoveNextAsync(enumerator, options.CurrentValue.KeepAliveInterval, timeProvider, keepAlive);
            }

            while (hasEvent)
            {
                onEvent(enumerator.Current);
                var next = enumerator.MoveNextAsync();
                if (!next.IsCompleted || sse.HasBacklog)
                {
                    beforeFlush?.Invoke();
                    await sse.FlushAsync();
                }

                hasEvent = await next;
            }
        }
        finally
        {
            await enumerator.DisposeAsync();
        }
    }

    /// <summary>
    /// Streams one single-choice generation for the front ends that name their events (Anthropic, Responses): each
    /// piece of text goes to <paramref name="onText"/>, of reasoning (when split) to <paramref name="onReasoning"/>, each tool call's start and argument pieces to
    /// <paramref name="onToolCall"/>, the admission (when the request asked for it) to <paramref name="onAdmitted"/>. Returns how it ended: the completion of a finished choice,
    /// or the error to report (failed, cancelled, or a broken relay,
    /// which is logged); null when the client went away.
    /// </summary>
    public async Task<StreamEnd?> RelayChoiceAsync(GenerationStream stream, SseWriter sse, Action keepAlive, Action<string> onText, string requestId, Action<GenerationEvent>? onToolCall = null, Action<RequestAdmitted>? onAdmitted = null, Action<string>? onReasoning = null)
    {
        GenerationCompleted? completion = null;
        try
        {
            await RelayAsync(stream.ReadAllAsync(), sse, keepAlive, item =>
            {
                switch (item)
                {
                    case TextDelta delta when !sse.IsClientGone:
                        onText(delta.Text);
                        break;
                    case ReasoningDelta thought when !sse.IsClientGone && thought.Text.Length > 0:
                        onReasoning?.Invoke(thought.Text);
                        break;
                    case ToolCallStarted or ToolCallArgumentsDelta when !sse.IsClientGone:
                        onToolCall?.Invoke(item);
                        break;
                    case RequestAdmitted admitted when !sse.IsClientGone:
                        onAdmitted?.Invoke(admitted);
                        break;
                    case GenerationCompleted done:
                        completion = done;
                        break;
                }
            });
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            OpenAiLog.StreamBroke(logger, ex, requestId);
            stream.Cancel();
            completion = null;
        }

        if (sse.IsClientGone)
        {
            return null;
        }

        if (completion is { FinishReason: FinishReason.Stop or FinishReason.Length or FinishReason.ToolCalls })
        {
            return new StreamEnd(completion, null);
        }

        var error = completion is null ? OpenAiErrors.StreamBroke() : OpenAiErrors.FromCompletion(completion);
        OpenAiLog.StreamFailed(logger, requestId, error.Code ?? error.Type, error.Message);
        return new StreamEnd(null, error);
    }

    /// <summary>A choice that finished (stop, length or tool calls) rather than failed or was cancelled.</summary>
    private static bool Succeeded(GenerationCompleted completion) =>
        completion.FinishReason is not (FinishReason.Cancelled or FinishReason.Error);
}

/// <summary>How a single-choice stream ended: a finished choice, or the error to report.</summary>
internal sealed record StreamEnd(GenerationCompleted? Completion, OpenAiException? Error);

/// <summary>
/// The events a streamed response reads: one engine stream, or several (a legacy completion with an array of
/// prompts) merged with their choices renumbered.
/// </summary>
internal sealed class StreamSource
{
    private readonly IReadOnlyList<GenerationStream> _streams;

    public StreamSource(IReadOnlyList<GenerationStream> streams, int choicesPerPrompt, string requestId)
    {
        _streams = streams;
        ChoicesPerPrompt = choicesPerPrompt;
        RequestId = requestId;
        Choices = streams.Count * choicesPerPrompt;
        PromptTokens = streams.Sum(s => s.PromptTokens);
        Events = streams.Count == 1 ? streams[0].ReadAllAsync() : MergeAsync();
    }

    public string RequestId { get; }

    public int Choices { get; }

    public int ChoicesPerPrompt { get; }

    public int PromptTokens { get; }

    public IAsyncEnumerable<GenerationEvent> Events { get; }

    public void Cancel()
    {
        foreach (var stream in _streams)
        {
            stream.Cancel();
        }
    }

    private async IAsyncEnumerable<GenerationEvent> MergeAsync()
    {
        var channel = Channel.CreateBounded<GenerationEvent>(new BoundedChannelOptions(64) { SingleReader = true });
        using var stop = new CancellationTokenSource();
        var pumps = new Task[_streams.Count];
        for (var i = 0; i < pumps.Length; i++)
        {
            pumps[i] = PumpAsync(_streams[i], i * ChoicesPerPrompt, channel.Writer, stop.Token);
        }

        var completion = Task.WhenAll(pumps).ContinueWith(
            t => channel.Writer.TryComplete(t.Exception?.GetBaseException()),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        var finished = false;
        try
        {
            await foreach (var item in channel.Reader.ReadAllAsync(CancellationToken.None))
            {
                yield return item;
            }

            finished = true;
        }
        finally
        {
            if (!finished)
            {
                // Left early: stop the generations and unblock the pumps so nothing waits forever.
                Cancel();
                await stop.CancelAsync();
            }

            await completion;
        }
    }

    private static async Task PumpAsync(GenerationStream stream, int offset, ChannelWriter<GenerationEvent> writer, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var item in stream.ReadAllAsync(CancellationToken.None))
            {
                GenerationEvent renumbered = item switch
                {
                    TextDelta delta => delta with { Choice = delta.Choice + offset },
                    GenerationCompleted done => done with { Choice = done.Choice + offset },
                    _ => item,
                };
                await writer.WriteAsync(renumbered, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The reader left; the generation was cancelled with it.
        }
    }
}
