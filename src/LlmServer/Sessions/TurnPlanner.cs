using LlmServer.Engine.Generation;
using LlmServer.Operations.Limits;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>What one turn sends to the engine, and which stored messages its window holds.</summary>
/// <param name="ContextStart">The index of the first stored message in the window.</param>
/// <param name="PromptTokens">The rendered window's tokens, counted as the engine counts them.</param>
/// <param name="Slid">The window started later than the previous answer's.</param>
internal sealed record TurnPlan(GenerationRequest Request, int ContextStart, int PromptTokens, bool Slid);

/// <summary>
/// History → context window → request. The model sees the system prompt, then the most recent whole turns that fit
/// (a turn starts at a user message), always the newest user message, and room for the answer. The window keeps the
/// previous answer's start while it fits; when it no longer does, it drops enough old turns to get under the
/// low-water mark, so it moves every few turns and the turns in between reuse the session's KV cache. The choice
/// depends only on the stored history and the settings, so the same history always gives the same window.
/// </summary>
internal sealed class TurnPlanner
{
    private readonly ITextGenerator _generator;
    private readonly SessionOptions _options;
    private readonly int _maxPromptTokens;

    public TurnPlanner(ITextGenerator generator, IOptions<SessionOptions> options, IOptions<LimitsOptions> limits)
    {
        _generator = generator;
        _options = options.Value;
        _maxPromptTokens = limits.Value.MaxPromptTokens;
    }

    /// <param name="history">The stored messages the answer follows; the last one is the user message to answer.</param>
    public TurnPlan Plan(StoredSession session, IReadOnlyList<SessionMessage> history)
    {
        var slot = _generator.Model?.SlotContextLength
            ?? throw new SessionException(SessionErrorCodes.Unavailable, "the model is not loaded yet; retry when the server is ready");
        var maxTokens = session.Settings.MaxTokens ?? (_options.DefaultMaxTokens > 0 ? _options.DefaultMaxTokens : null);
        try
        {
            var window = ChooseWindow(session.SystemPrompt, history, slot, AnswerReserve(maxTokens, slot));
            return new TurnPlan(BuildRequest(session, Turns(session.SystemPrompt, history, window.Start), maxTokens), window.Start, window.Tokens, window.Slid);
        }
        catch (GenerationException ex)
        {
            throw SessionErrors.FromEngine(ex);
        }
    }

    /// <summary>The room kept for the answer: its token limit, else the configured reserve; at most half the slot.</summary>
    private int AnswerReserve(int? maxTokens, int slot) => Math.Clamp(maxTokens ?? _options.AnswerReserveTokens, 1, Math.Max(1, slot / 2));

    private (int Start, int Tokens, bool Slid) ChooseWindow(string? systemPrompt, IReadOnlyList<SessionMessage> history, int slot, int reserve)
    {
        var newest = history.Count - 1;
        var budget = slot - reserve;
        if (_maxPromptTokens > 0)
        {
            budget = Math.Min(budget, _maxPromptTokens);
        }

        // A window whose fewest possible tokens already exceed the budget is not tokenized (see CountPromptTokens).
        var counts = new Dictionary<int, TokenCount>();
        TokenCount Counted(int start)
        {
            if (!counts.TryGetValue(start, out var tokens))
            {
                var text = _generator.ApplyChatTemplate(Turns(systemPrompt, history, start), [], addAssistantPrompt: true);
                tokens = _generator.CountPromptTokens(text, budget);
                counts[start] = tokens;
            }

            return tokens;
        }

        int Count(int start) => Counted(start).Tokens;

        var turnStarts = TurnStarts(history);
        var previous = PreviousStart(history);
        var kept = turnStarts.FindIndex(i => i >= previous);
        var start = turnStarts[kept];
        if (Count(start) <= budget)
        {
            return (start, Count(start), start > previous);
        }

        // Slide: the first later turn start whose window is under the low-water mark (windows shrink as they start later).
        var target = (int)(budget * _options.WindowLowWater);
        int low = kept + 1, high = turnStarts.Count - 1;
        while (low < high)
        {
            var middle = low + ((high - low) / 2);
            if (Count(turnStarts[middle]) <= target)
            {
                high = middle;
            }
            else
            {
                low = middle + 1;
            }
        }

        var chosen = turnStarts[Math.Min(low, turnStarts.Count - 1)];
        if (Count(chosen) <= budget)
        {
            return (chosen, Count(chosen), true);
        }

        throw new SessionException(
            SessionErrorCodes.ContextLengthExceeded,
            $"the message needs {(Counted(newest).AtLeast ? "at least " : string.Empty)}{Count(newest)} tokens with the system prompt, but a slot's context holds {slot} tokens and {reserve} are kept for the answer",
            "text");
    }

    /// <summary>Where turns start: every user message (the newest one always among them), and the first message.</summary>
    private static List<int> TurnStarts(IReadOnlyList<SessionMessage> history)
    {
        var starts = new List<int>();
        for (var i = 0; i < history.Count; i++)
        {
            if (i == 0 || history[i].Role == "user")
            {
                starts.Add(i);
            }
        }

        if (starts[^1] != history.Count - 1)
        {
            starts.Add(history.Count - 1);
        }

        return starts;
    }

    /// <summary>The window start of the latest answer in the history (0 when none says).</summary>
    private static int PreviousStart(IReadOnlyList<SessionMessage> history)
    {
        for (var i = history.Count - 1; i >= 0; i--)
        {
            if (history[i].ContextStart is { } start)
            {
                return Math.Clamp(start, 0, history.Count - 1);
            }
        }

        return 0;
    }

    /// <summary>
    /// The window as chat turns, stored text verbatim: the engine keeps a session's KV warm by matching the rendered
    /// history against the exact text its KV holds. An answer is its content, never its reasoning, as reasoning
    /// templates render earlier turns (they drop the thinking). An answer without reasoning is the very text the model
    /// generated, so the next prompt reuses all of the KV. After a thinking answer how much is reused depends on the
    /// template: where the model opened the block (Qwen3), the previous prompt is reused whole; where the generation
    /// prompt opened it (DeepSeek-R1's distills, QwQ), the next prompt's history does not repeat that opening, so only
    /// the tokens the two prompts share are reused (the previous prompt short of its generation prompt, at least).
    /// </summary>
    private static List<ChatTurn> Turns(string? systemPrompt, IReadOnlyList<SessionMessage> history, int start)
    {
        var turns = new List<ChatTurn>(history.Count - start + 1);
        if (!string.IsNullOrEmpty(systemPrompt))
        {
            turns.Add(new ChatTurn("system", systemPrompt));
        }

        for (var i = start; i < history.Count; i++)
        {
            turns.Add(new ChatTurn(history[i].Role, history[i].Content));
        }

        return turns;
    }

    private static GenerationRequest BuildRequest(StoredSession session, IReadOnlyList<ChatTurn> window, int? maxTokens)
    {
        var settings = session.Settings;
        var defaults = new SamplingOptions();
        return new GenerationRequest
        {
            Messages = window,
            Sampling = defaults with
            {
                Temperature = settings.Temperature is { } temperature ? (float)temperature : defaults.Temperature,
                TopP = settings.TopP is { } topP ? (float)topP : defaults.TopP,
                Seed = settings.Seed is { } seed ? SamplingOptions.SeedFrom(seed) : null,
            },
            MaxTokens = maxTokens,
            SessionKey = session.Id,

            // A reasoning model's thinking is stored and streamed apart from its answer.
            SplitReasoning = true,
        };
    }
}
