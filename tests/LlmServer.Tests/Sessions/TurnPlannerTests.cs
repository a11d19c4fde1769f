using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Operations.Limits;
using LlmServer.Sessions;
using Microsoft.Extensions.Options;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// The context window's rules on a tokenizer whose counts are obvious: the template renders each turn as
/// "role: content" on its own line, and every whitespace-separated word is one token (plus one for BOS). So a
/// message of k words costs k + 1 tokens, the system prompt likewise, and a prompt 1 more.
/// </summary>
public sealed class TurnPlannerTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);

    [Fact]
    public void A_history_that_fits_is_sent_whole_with_the_system_prompt_first()
    {
        var planner = Planner(slot: 100);
        var history = Conversation(turns: 3, words: 4); // 6 messages of 5 tokens

        var plan = planner.Plan(Session("Be brief.", maxTokens: 10), history);

        Assert.Equal((0, false), (plan.ContextStart, plan.Slid));
        Assert.Equal(1 + 3 + (6 * 5), plan.PromptTokens);
        Assert.Equal(["system", "user", "assistant", "user", "assistant", "user", "assistant"], plan.Request.Messages!.Select(m => m.Role));
        Assert.Equal("Be brief.", plan.Request.Messages![0].Content);
        Assert.Equal("s1", plan.Request.SessionKey);
        Assert.Equal(10, plan.Request.MaxTokens);
    }

    [Fact]
    public void A_window_that_no_longer_fits_drops_the_oldest_whole_turns_down_to_the_low_water_mark()
    {
        // Slot 100, answer 20: 80 tokens of room, low water 60. Each turn (user + assistant) is 10 tokens.
        var planner = Planner(slot: 100, lowWater: 0.75);
        var history = Conversation(turns: 9, words: 4).SkipLast(1).ToList(); // ends with the 9th user message
        var plan = planner.Plan(Session(null, maxTokens: 20), history);

        // 8 whole turns + the new message = 86 tokens: over 80. Starting at turn k (index 2k) costs 1 + (8 - k) * 10 + 5.
        // The first start at or under 60: k = 3 (56 tokens), index 6, a user message.
        Assert.Equal((6, true, 56), (plan.ContextStart, plan.Slid, plan.PromptTokens));
        Assert.Equal("user", plan.Request.Messages![0].Role);
        Assert.Equal(history[^1].Content, plan.Request.Messages[^1].Content);
    }

    [Fact]
    public void The_system_prompt_stays_when_the_window_slides()
    {
        var planner = Planner(slot: 100);
        var history = Conversation(turns: 9, words: 4).SkipLast(1).ToList();

        var plan = planner.Plan(Session("Stories for children only.", maxTokens: 20), history);

        Assert.True(plan.Slid);
        Assert.Equal(("system", "Stories for children only."), (plan.Request.Messages![0].Role, plan.Request.Messages[0].Content));
        Assert.True(plan.PromptTokens <= 60);
    }

    [Fact]
    public void The_window_keeps_its_start_while_it_fits_so_turns_in_between_reuse_the_cache()
    {
        var (history, plans) = Converse(Planner(slot: 100), Session(null, maxTokens: 20), turns: 30);
        var starts = plans.Select(p => p.ContextStart).ToList();

        // The start never goes back, always lands on a user message, and moves on only a few turns out of 30.
        Assert.Equal(starts.Order(), starts);
        Assert.All(starts, s => Assert.Equal("user", history[s].Role));
        var moves = starts.Zip(starts.Skip(1)).Count(p => p.First != p.Second);
        Assert.InRange(moves, 3, 10);
        Assert.True(starts[^1] > 0);
    }

    [Fact]
    public void The_same_history_gives_the_same_window()
    {
        var planner = Planner(slot: 100);
        var history = Conversation(turns: 12, words: 4).SkipLast(1).ToList();

        var first = planner.Plan(Session(null, maxTokens: 20), history);
        var second = Planner(slot: 100).Plan(Session(null, maxTokens: 20), history.ToList());

        Assert.Equal((first.ContextStart, first.PromptTokens), (second.ContextStart, second.PromptTokens));
        Assert.Equal(first.Request.Messages, second.Request.Messages);
    }

    [Fact]
    public void Without_a_token_limit_the_configured_reserve_is_kept_for_the_answer()
    {
        // DefaultMaxTokens 0 and no session limit: the reserve (20) applies. 5 messages of 5 tokens + BOS = 26.
        var history = Conversation(turns: 3, words: 4).SkipLast(1).ToList();
        var roomy = Planner(slot: 46, defaultMaxTokens: 0, reserve: 20).Plan(Session(null, maxTokens: null), history);
        var tight = Planner(slot: 45, defaultMaxTokens: 0, reserve: 20).Plan(Session(null, maxTokens: null), history);

        Assert.Equal((0, false, (int?)null), (roomy.ContextStart, roomy.Slid, roomy.Request.MaxTokens));
        Assert.True(tight.Slid);
        Assert.True(tight.ContextStart > 0);
    }

    [Fact]
    public void A_newest_message_that_fits_only_alone_is_sent_alone()
    {
        // Room 80, low water 60: the new message (70 tokens) is above the mark but fits the room.
        var history = Conversation(turns: 2, words: 4).ToList();
        history.Add(Message(history.Count, "user", 68));

        var plan = Planner(slot: 100).Plan(Session("S", maxTokens: 20), history);

        Assert.Equal((4, true), (plan.ContextStart, plan.Slid));
        Assert.Equal(["system", "user"], plan.Request.Messages!.Select(m => m.Role));
    }

    [Fact]
    public void A_user_message_that_cannot_fit_even_alone_is_context_length_exceeded()
    {
        var history = Conversation(turns: 2, words: 4).ToList();
        history.Add(Message(history.Count, "user", 90));

        var error = Assert.Throws<SessionException>(() => Planner(slot: 100).Plan(Session(null, maxTokens: 20), history));

        Assert.Equal(SessionErrorCodes.ContextLengthExceeded, error.Code);
        Assert.Contains("holds 100 tokens and 20 are kept for the answer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_answer_reserve_is_at_most_half_the_slot()
    {
        // maxTokens 500 on a 100-token slot keeps 50 for the answer: the 26-token history fits.
        var history = Conversation(turns: 3, words: 4).SkipLast(1).ToList();

        var plan = Planner(slot: 100).Plan(Session(null, maxTokens: 500), history);

        Assert.Equal((0, false), (plan.ContextStart, plan.Slid));
    }

    [Fact]
    public void The_prompt_token_limit_caps_the_window()
    {
        var history = Conversation(turns: 4, words: 4).SkipLast(1).ToList(); // 36 tokens

        var plan = Planner(slot: 1000, maxPromptTokens: 30).Plan(Session(null, maxTokens: 20), history);

        Assert.True(plan.Slid);
        Assert.True(plan.PromptTokens <= 30);
    }

    [Fact]
    public void A_regenerated_answer_gets_the_window_its_turn_had()
    {
        var planner = Planner(slot: 100);
        var session = Session(null, maxTokens: 20);
        var (history, plans) = Converse(planner, session, turns: 12);

        // Regenerating the last answer plans the history up to its user message again.
        var again = planner.Plan(session, history.SkipLast(1).ToList());

        Assert.Equal(plans[^1].ContextStart, again.ContextStart);
    }

    private static TurnPlanner Planner(int slot, double lowWater = 0.75, int defaultMaxTokens = 1024, int reserve = 512, int maxPromptTokens = 0) => new(
        new WordTokenizer(slot),
        Options.Create(new SessionOptions { WindowLowWater = lowWater, DefaultMaxTokens = defaultMaxTokens, AnswerReserveTokens = reserve }),
        Options.Create(new LimitsOptions { MaxPromptTokens = maxPromptTokens }));

    /// <summary>A conversation as the server drives it: each answer stored with the window start its turn had.</summary>
    private static (List<SessionMessage> History, List<TurnPlan> Plans) Converse(TurnPlanner planner, StoredSession session, int turns)
    {
        var history = new List<SessionMessage>();
        var plans = new List<TurnPlan>();
        for (var turn = 0; turn < turns; turn++)
        {
            history.Add(Message(history.Count, "user", 4));
            plans.Add(planner.Plan(session, history));
            history.Add(Message(history.Count, "assistant", 4) with { ContextStart = plans[^1].ContextStart });
        }

        return (history, plans);
    }

    private static StoredSession Session(string? systemPrompt, int? maxTokens) =>
        new("s1", null, "t", systemPrompt, new SessionSettings(Temperature: 0, MaxTokens: maxTokens), Now, Now, 0);

    private static List<SessionMessage> Conversation(int turns, int words) =>
        [.. Enumerable.Range(0, turns * 2).Select(i => Message(i, i % 2 == 0 ? "user" : "assistant", words))];

    private static SessionMessage Message(int index, string role, int words) =>
        new(index, role, string.Join(' ', Enumerable.Range(0, words).Select(w => $"m{index}w{w}")), Now, null, null, null, role == "assistant" ? "stop" : null);

    /// <summary>The fake tokenizer and template described on the class.</summary>
    private sealed class WordTokenizer(int slot) : ITextGenerator
    {
        public EngineState State => EngineState.Ready;

        public Task<EngineState> WaitForStateChangeAsync(EngineState state, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ModelInfo? Model { get; } = new(
            "fake", "fake.gguf", "llama", null, 0, 0, slot, 512, true, slot, 1, new BackendInfo("cpu", "none", "", 0, 1));

        public SchedulerStatus GetStatus() => new(1, slot, 0, 0, 0, 0, true, null, 0);

        public string ApplyChatTemplate(IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, bool addAssistantPrompt = true) =>
            string.Concat(messages.Select(m => $"{m.Role}: {m.Content}\n"));

        public string RenderPrompt(GenerationRequest request) => request.Prompt ?? ApplyChatTemplate(request.Messages ?? [], request.Tools);

        public IReadOnlyList<int> Tokenize(string text, bool addSpecial = false, bool parseSpecial = false) =>
            new int[text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length + (addSpecial ? 1 : 0)];

        public string Detokenize(IEnumerable<int> tokens) => throw new NotSupportedException();

        public GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public void EvictSession(string sessionKey) => throw new NotSupportedException();

        public Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    }
}
