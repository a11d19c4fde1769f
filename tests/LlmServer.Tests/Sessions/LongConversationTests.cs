using LlmServer.Sessions;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Operations;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using static LlmServer.Tests.Sessions.HubTestExtensions;

namespace LlmServer.Tests.Sessions;

/// <summary>Conversations longer than a slot's context: the window slides, the history stays whole.</summary>
[Collection(SessionsCollection.Name)]
public sealed class LongConversationTests
{
    private const int Turns = 40;

    private static readonly string[] Lines =
    [
        "Tom had a red ball and he liked to play with it in the park.",
        "One day the ball rolled away into the big green bushes.",
        "Lily saw a little bird sitting on a branch of the tall tree.",
        "The sun was warm and the children ran to the river to swim.",
        "Mom made a cake for the party and everyone was very happy.",
    ];

    /// <summary>Words alike in their first letters: a message about one and a message about another share a part of a word.</summary>
    private static readonly string[] Things = ["fox", "forest", "fog", "foal", "food"];

    [Fact]
    public async Task A_40_turn_conversation_on_a_512_token_slot_answers_every_turn_and_keeps_the_whole_history()
    {
        await WithConversationAsync(warmSlide: false, StoryLine, async (server, endings, detail) =>
        {
            Assert.Equal(Turns * 2, detail.Messages.Count);
            Assert.Equal(Enumerable.Range(0, Turns * 2), detail.Messages.Select(m => m.Index));
            var answers = detail.Messages.Where(m => m.Role == "assistant").ToList();
            Assert.Equal(endings.Select(e => e.ContextStart), answers.Select(a => a.ContextStart));
            Assert.All(answers, a => Assert.Contains(a.FinishReason, new[] { "stop", "length" }));

            // The window moves forward, only ever to a user message, and never past the turn's own question.
            var starts = endings.Select(e => e.ContextStart!.Value).ToList();
            Assert.Equal(starts.Order(), starts);
            Assert.Equal(0, starts[0]);
            Assert.True(starts[^1] > 0, "the window never slid");
            for (var turn = 0; turn < Turns; turn++)
            {
                Assert.Equal("user", detail.Messages[starts[turn]].Role);
                Assert.InRange(starts[turn], 0, turn * 2);
                Assert.True(endings[turn].Usage!.PromptTokens < 512, $"turn {turn}: {endings[turn].Usage!.PromptTokens} prompt tokens");
            }

            // It slides every few turns, not every turn; the turns in between reuse the session's KV cache.
            var kept = KeptTurns(starts);
            Assert.True(kept.Count >= Turns / 2, $"the window moved on {Turns - 1 - kept.Count} of {Turns - 1} turns");
            Assert.All(kept, t => Assert.True(endings[t].Usage!.CachedTokens > 0, $"turn {t} reused no cached tokens"));

            // By default a slide is exact: the system prompt's cells stay, the kept turns are prefilled again.
            var sliding = Enumerable.Range(1, Turns - 1).Except(kept).ToList();
            var newMessageCost = kept.Max(t => endings[t].Usage!.PromptTokens - endings[t].Usage!.CachedTokens) + 2;
            Assert.All(sliding, t =>
            {
                var usage = endings[t].Usage!;
                Assert.True(
                    usage.CachedTokens > 0 && usage.PromptTokens - usage.CachedTokens > newMessageCost,
                    $"sliding turn {t}: {usage.PromptTokens} prompt tokens, {usage.CachedTokens} cached; a kept turn prefills up to {newMessageCost}");
            });

            // Each move of the window is counted.
            var metrics = await server.Server.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            Assert.Equal(Turns - 1 - kept.Count, PrometheusText.Sum(metrics, "llmserver_session_window_slides_total"));
        });
    }

    [Fact]
    public async Task With_the_warm_slide_sliding_turns_keep_the_rest_of_the_window_and_prefill_only_the_new_message()
    {
        await WithConversationAsync(warmSlide: true, StoryLine, (_, endings, _) =>
        {
            AssertSlidingTurnsPrefillOnlyTheNewMessage(endings);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public async Task With_the_warm_slide_answers_cut_at_their_limit_still_let_a_slide_keep_the_kept_turns()
    {
        // Qwen3's template; every answer ends at its token limit, so the KV ends a turn's text short of its last
        // token's, and the turn after it starts with that text. The first kept message and the first dropped one share
        // their beginning up to inside a word ("... the fo|od" against "... the fo|x"), where the KV holds the word whole.
        await WithConversationAsync(
            warmSlide: true,
            turn => $"Tell me about the {Things[turn % Things.Length]} that the little girl saw by the river in turn {turn}.",
            (_, endings, detail) =>
            {
                Assert.All(detail.Messages.Where(m => m.Role == "assistant"), a => Assert.Equal("length", a.FinishReason));
                AssertSlidingTurnsPrefillOnlyTheNewMessage(endings);
                return Task.CompletedTask;
            },
            "Qwen-Qwen3-0.6B.jinja");
    }

    [Fact]
    public async Task With_the_warm_slide_a_slide_after_a_thinking_answer_keeps_the_kept_turns()
    {
        // Every other answer thinks (Qwen3's shape: the model opens the block), the others are the model's own words,
        // whose tokens need not be what tokenizing their text gives. After a thinking answer the KV holds the thinking
        // after the last prompt, and the next prompt carries the answer without it: the KV's text matches it only up
        // to that prompt.
        await WithConversationAsync(
            warmSlide: true,
            turn => turn % 2 == 0 ? $"Tell me about turn {turn}." : $"Think about turn {turn}.",
            (_, endings, detail) =>
            {
                var answers = detail.Messages.Where(m => m.Role == "assistant").ToList();
                Assert.All(answers.Where((_, turn) => turn % 2 == 1), a => Assert.NotNull(a.Reasoning));
                AssertSlidingTurnsPrefillOnlyTheNewMessage(endings);
                return Task.CompletedTask;
            },
            "Qwen-Qwen3-0.6B.jinja",
            maxTokens: 40,
            services => ScriptedOutput.Install(services, message => message.StartsWith("Think", StringComparison.Ordinal) ? "<think>\nHm.\n</think>\n\nA fox ran by." : null));
    }

    private static string StoryLine(int turn) => $"{Lines[turn % Lines.Length]} Turn {turn}.";

    /// <summary>
    /// A turn that keeps its window prefills its new message (and the template around it); a sliding turn, whose
    /// dropped turns' cells were removed and the rest shifted, prefills no more than that (give or take the turn
    /// number's digits), where a slide that fell back to a prefill would decode the whole window again.
    /// </summary>
    private static void AssertSlidingTurnsPrefillOnlyTheNewMessage(List<ChatStreamEvent> endings)
    {
        var starts = endings.Select(e => e.ContextStart!.Value).ToList();
        var kept = KeptTurns(starts);
        var sliding = Enumerable.Range(1, Turns - 1).Except(kept).ToList();
        Assert.NotEmpty(sliding);

        var newMessageCost = kept.Max(t => endings[t].Usage!.PromptTokens - endings[t].Usage!.CachedTokens) + 2;
        Assert.All(sliding, t =>
        {
            var usage = endings[t].Usage!;
            Assert.True(
                usage.CachedTokens > 0 && usage.PromptTokens - usage.CachedTokens <= newMessageCost,
                $"sliding turn {t}: {usage.PromptTokens} prompt tokens, {usage.CachedTokens} cached; a kept turn prefills up to {newMessageCost}");
        });
    }

    /// <summary>Turns (after the first) whose window starts where the previous turn's did.</summary>
    private static List<int> KeptTurns(List<int> starts) => [.. Enumerable.Range(1, Turns - 1).Where(t => starts[t] == starts[t - 1])];

    /// <summary>
    /// Runs the 40 turns (<paramref name="message"/> of each) on a server with two 512-token slots and the model's chat
    /// template or <paramref name="template"/>, then hands the endings and the stored session over.
    /// </summary>
    private static async Task WithConversationAsync(
        bool warmSlide,
        Func<int, string> message,
        Func<SessionTestServer, List<ChatStreamEvent>, SessionDetail, Task> check,
        string? template = null,
        int maxTokens = 24,
        Action<IServiceCollection>? configureServices = null)
    {
        string[] args =
        [
            "--Scheduler:Slots=2",
            "--Scheduler:ContextSize=1024",
            .. warmSlide ? ["--Scheduler:WarmSlide=true"] : Array.Empty<string>(),
            .. template is null ? Array.Empty<string>() : ["--Model:ChatTemplateFile=" + Path.Combine(ChatTemplateFixtures.Root, "templates", template)],
        ];
        var server = await SessionTestServer.StartAsync(null, configureServices, args);
        try
        {
            await using (server)
            {
                await using var hub = await server.ConnectAsync();
                var session = await hub.CreateAsync(maxTokens, systemPrompt: "Short stories for children.");
                var endings = new List<ChatStreamEvent>();
                for (var turn = 0; turn < Turns; turn++)
                {
                    var ending = AssertWellFormed(await hub.Send(session.Id, message(turn)).CollectAsync());
                    Assert.True(ending.Type == ChatStreamEvent.DoneType, $"turn {turn}: {ending.Code}: {ending.Message}");
                    Assert.NotNull(ending.ContextStart);
                    endings.Add(ending);
                }

                await check(server, endings, await hub.GetAsync(session.Id));
            }
        }
        finally
        {
            server.DeleteFiles();
        }
    }
}
