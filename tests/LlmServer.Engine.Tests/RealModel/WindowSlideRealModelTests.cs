using LLama;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>
/// A session whose window slides answers as the same tokens prefilled from scratch, on stories260K. Driven at the
/// scheduler with token ids: the conversation continues with the answers' own tokens, so both sides see the same ids.
/// </summary>
public sealed class WindowSlideRealModelTests
{
    private const int SlotContext = 256;
    private const int AnswerTokens = 24;

    // The window slides when a prompt and its answer would pass HighWater, dropping the oldest turns to LowWater.
    private const int HighWater = 200;
    private const int LowWater = 130;
    private const int Turns = 16;

    private const string System = "Once upon a time there was a little girl named Lily. She was three years old.\n";

    private static readonly string[] Lines =
    [
        "One day she saw a big brown dog near the tall tree.",
        "The dog was sad because it had lost its red ball.",
        "Lily and her mom went to the park to play on the swings.",
        "Tom had a little boat and he liked to sail it on the pond.",
        "The sun was warm and the birds sang in the green trees.",
    ];

    [Fact]
    public async Task A_conversation_through_several_slides_answers_every_turn_as_a_fresh_prefill_of_its_tokens()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Stories260K);
        var vocabulary = new LlamaVocabulary(weights);
        var session = await StartAsync(new SchedulerOptions { Slots = 2, ContextSize = 2 * SlotContext });
        var fresh = await StartAsync(new SchedulerOptions { Slots = 1, ContextSize = SlotContext, PrefixReuse = false });
        try
        {
            var system = vocabulary.Tokenize(System, addSpecial: true, parseSpecial: false);
            var history = new List<int[]>();
            var start = 0;
            var slides = 0;
            List<int> resident = [];
            for (var turn = 0; turn < Turns; turn++)
            {
                var user = vocabulary.TokenizeContinuation($"{Lines[turn % Lines.Length]} Turn {turn}.\n", parseSpecial: false);
                var window = start;
                while (Prompt(system, history, start, user).Length + AnswerTokens > HighWater
                    || (start > window && Prompt(system, history, start, user).Length > LowWater))
                {
                    start++;
                }

                var prompt = Prompt(system, history, start, user);
                var (answer, usage) = await GenerateAsync(session, prompt, "conversation");
                var (expected, freshUsage) = await GenerateAsync(fresh, prompt, null);
                Assert.Equal(0, freshUsage.CachedPromptTokens);
                Assert.True(expected.SequenceEqual(answer), $"turn {turn} (window from turn {start}, {slides} slides so far): the session answered [{string.Join(',', answer)}], a fresh prefill [{string.Join(',', expected)}]");

                // A turn that keeps its window reuses everything the last turn left in the KV cache; a slide only
                // the leading tokens that did not move (the system prompt), and prefills the rest of the window again.
                var reusable = SlotTable.CommonPrefix(resident, prompt);
                Assert.Equal(reusable, usage.CachedPromptTokens);
                if (start > window)
                {
                    slides++;
                    Assert.InRange(reusable, system.Length, resident.Count - 1);
                }
                else
                {
                    Assert.Equal(resident.Count, reusable);
                }

                // The KV cache holds the prompt and the answer but its last sampled token.
                resident = [.. prompt, .. answer[..^1]];
                history.Add([.. user, .. answer]);
            }

            Assert.True(slides >= 2, $"the window slid {slides} times");
        }
        finally
        {
            session.Dispose();
            fresh.Dispose();
        }
    }

    private static int[] Prompt(int[] system, List<int[]> history, int start, int[] user) =>
        [.. system, .. history.Skip(start).SelectMany(turn => turn), .. user];

    private static async Task<(int[] Tokens, GenerationUsage Usage)> GenerateAsync(InferenceScheduler scheduler, int[] prompt, string? session)
    {
        var request = new GenerationRequest { MaxTokens = AnswerTokens, IgnoreEos = true, SessionKey = session, LogProbs = true, Sampling = new() { Temperature = 0 } };
        var tokens = new List<int>();
        GenerationCompleted? completed = null;
        await foreach (var item in scheduler.Submit(request, prompt, CancellationToken.None).ReadAllAsync())
        {
            if (item is TextDelta { LogProbs: { } logProbs })
            {
                tokens.AddRange(logProbs.Select(p => p.TokenId));
            }
            else if (item is GenerationCompleted done)
            {
                completed = done;
            }
        }

        Assert.NotNull(completed);
        Assert.Null(completed.Error);
        Assert.Equal(AnswerTokens, tokens.Count);
        return ([.. tokens], completed.Usage);
    }

    /// <summary>A scheduler on its own thread over a real context, as the engine builds it (one thread: the machine is shared).</summary>
    private static async Task<InferenceScheduler> StartAsync(SchedulerOptions options)
    {
        var model = new ModelOptions { Path = TestModels.Stories260K, Threads = 1, BatchThreads = 1 };
        var scheduler = new InferenceScheduler(
            () =>
            {
                var parameters = ModelLoader.CreateParameters(model, options, trainingContext: 0);
                var weights = LLamaWeights.LoadFromFile(parameters);
                try
                {
                    return new LlamaInferenceBackend(weights, weights.CreateContext(parameters), options.Slots);
                }
                catch
                {
                    weights.Dispose();
                    throw;
                }
            },
            options,
            TimeProvider.System,
            NullLogger.Instance);
        scheduler.Start();
        await scheduler.Started;
        return scheduler;
    }
}
