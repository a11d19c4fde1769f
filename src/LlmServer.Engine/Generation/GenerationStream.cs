using System.Runtime.CompilerServices;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Tools;

namespace LlmServer.Engine.Generation;

/// <summary>
/// The events of one admitted request: <see cref="TextDelta"/>s, then one <see cref="GenerationCompleted"/> per
/// choice. Disposing it before the end cancels the generation and frees its slot.
/// </summary>
public sealed class GenerationStream : IAsyncDisposable
{
    private readonly GenerationEventQueue _events;
    private readonly Action _cancel;
    private readonly CancellationTokenRegistration _registration;
    private int _completedChoices;
    private ToolCallStage? _toolCalls;
    private ReasoningStage? _reasoning;

    internal GenerationStream(
        string id,
        int promptTokens,
        int choices,
        GenerationEventQueue events,
        Action cancel,
        CancellationToken cancellationToken)
    {
        Id = id;
        PromptTokens = promptTokens;
        Choices = choices;
        _events = events;
        _cancel = cancel;
        _registration = cancellationToken.CanBeCanceled ? cancellationToken.Register(cancel) : default;
    }

    /// <summary>The request id (given or generated).</summary>
    public string Id { get; }

    /// <summary>Tokens in the prompt, known at admission.</summary>
    public int PromptTokens { get; }

    /// <summary>How many choices this stream carries.</summary>
    public int Choices { get; }

    /// <summary>
    /// Completes once the engine is done with the generation: every choice finished, was cancelled or failed, and its
    /// slot is free, however much of the stream is still unread (a slow client may read its events long after).
    /// </summary>
    public Task Ended => _events.Ended;

    /// <summary>True once every choice has completed.</summary>
    public bool IsCompleted => Volatile.Read(ref _completedChoices) >= Choices;

    /// <summary>
    /// Reads events as they come. Cancelling <paramref name="cancellationToken"/> cancels the generation. With
    /// reasoning split, the model's thinking comes as <see cref="ReasoningDelta"/>s; with tools offered, the
    /// (remaining) text is already split into content and <see cref="ToolCallStarted"/> /
    /// <see cref="ToolCallArgumentsDelta"/> events.
    /// </summary>
    public async IAsyncEnumerable<GenerationEvent> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var registration = cancellationToken.CanBeCanceled ? cancellationToken.Register(_cancel) : default;
        var staged = _reasoning is null && _toolCalls is null ? null : new List<GenerationEvent>();
        var parsed = _toolCalls is null ? null : new List<GenerationEvent>();
        while (await _events.WaitToReadAsync().ConfigureAwait(false))
        {
            while (_events.TryRead(out var item))
            {
                if (item is GenerationCompleted)
                {
                    Interlocked.Increment(ref _completedChoices);
                }

                if (staged is null)
                {
                    yield return item;
                    continue;
                }

                // Reasoning first: the tool-call parsers see only the answer.
                staged.Clear();
                if (_reasoning is null)
                {
                    staged.Add(item);
                }
                else
                {
                    _reasoning.Process(item, staged);
                }

                if (parsed is not null)
                {
                    parsed.Clear();
                    foreach (var piece in staged)
                    {
                        _toolCalls!.Process(piece, parsed);
                    }
                }

                foreach (var piece in parsed ?? staged)
                {
                    yield return piece;
                }
            }
        }
    }

    /// <summary>Routes this stream's text through the tool-call parsers (the engine does it when tools are offered).</summary>
    internal void ParseToolCalls(ToolCallStage stage) => _toolCalls = stage;

    /// <summary>Parts this stream's reasoning from its text (the engine does it when the request asks and the template writes think tags).</summary>
    internal void SplitReasoning(ReasoningStage stage) => _reasoning = stage;

    /// <summary>Asks the scheduler to stop this generation; the stream then ends with finish reason cancelled.</summary>
    public void Cancel() => _cancel();

    /// <summary>Reads the whole stream and gathers text and the final event of each choice.</summary>
    public async Task<GenerationResult> CollectAsync(CancellationToken cancellationToken = default)
    {
        var texts = new System.Text.StringBuilder[Choices];
        var reasoning = new System.Text.StringBuilder?[Choices];
        var logProbs = new List<TokenLogProb>?[Choices];
        var calls = new List<(string Id, string Name, System.Text.StringBuilder Arguments)>?[Choices];
        var completions = new GenerationCompleted?[Choices];
        for (var i = 0; i < Choices; i++)
        {
            texts[i] = new System.Text.StringBuilder();
        }

        await foreach (var item in ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            switch (item)
            {
                case TextDelta delta:
                    texts[delta.Choice].Append(delta.Text);
                    if (delta.LogProbs is { } lp)
                    {
                        (logProbs[delta.Choice] ??= []).AddRange(lp);
                    }

                    break;
                case ReasoningDelta thought:
                    // A piece without text (a block holding only whitespace) makes no reasoning.
                    if (thought.Text.Length > 0)
                    {
                        (reasoning[thought.Choice] ??= new System.Text.StringBuilder()).Append(thought.Text);
                    }

                    if (thought.LogProbs is { } thoughtLogProbs)
                    {
                        (logProbs[thought.Choice] ??= []).AddRange(thoughtLogProbs);
                    }

                    break;
                case ToolCallStarted started:
                    (calls[started.Choice] ??= []).Add((started.Id, started.Name, new System.Text.StringBuilder()));
                    break;
                case ToolCallArgumentsDelta arguments:
                    calls[arguments.Choice]![arguments.Index].Arguments.Append(arguments.Fragment);
                    break;
                case GenerationCompleted done:
                    completions[done.Choice] = done;
                    break;
            }
        }

        var choices = new GenerationChoiceResult[Choices];
        for (var i = 0; i < Choices; i++)
        {
            var done = completions[i] ?? throw new InvalidOperationException($"Choice {i} ended without a completion event.");
            choices[i] = new GenerationChoiceResult(i, texts[i].ToString(), done, logProbs[i])
            {
                ToolCalls = calls[i]?.Select(c => new ToolCall(c.Id, c.Name, c.Arguments.ToString())).ToList() ?? [],
                Reasoning = reasoning[i]?.ToString(),
            };
        }

        return new GenerationResult(Id, choices);
    }

    public ValueTask DisposeAsync()
    {
        if (!IsCompleted)
        {
            _cancel();
        }

        return _registration.DisposeAsync();
    }
}

/// <summary>What <see cref="GenerationStream.CollectAsync"/> gathered.</summary>
public sealed record GenerationResult(string Id, IReadOnlyList<GenerationChoiceResult> Choices);

/// <summary>
/// One choice's text (content only, when tools were offered or reasoning was split), its tool calls and final event.
/// <see cref="LogProbs"/> covers every generated token in order, reasoning included.
/// </summary>
public sealed record GenerationChoiceResult(int Index, string Text, GenerationCompleted Completion, IReadOnlyList<TokenLogProb>? LogProbs)
{
    /// <summary>The calls the model made, in order (empty without tools).</summary>
    public IReadOnlyList<ToolCall> ToolCalls { get; init; } = [];

    /// <summary>
    /// The model's reasoning, when it was split from the text (null when there was none); its tokens are the
    /// completion's <see cref="GenerationUsage.ReasoningTokens"/>.
    /// </summary>
    public string? Reasoning { get; init; }
}
