using System.Diagnostics;
using System.Globalization;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Benchmarks;

/// <summary>
/// A 10-turn conversation through the engine as the sessions feature drives it (chat messages, the session id as
/// the session key): time to first token of each turn, with KV reuse on and off, interleaved.
/// </summary>
internal static class SessionTurnsBenchmark
{
    private const int Turns = 10;

    public static async Task<int> RunAsync(string modelPath, int rounds)
    {
        var ratios = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var reuse in new[] { true, false })
            {
                var ttft = await ConversationAsync(modelPath, reuse, round);
                var ratio = ttft[^1] / ttft[0];
                ratios[reuse].Add(ratio);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round} reuse={reuse}: TTFT ms by turn {string.Join(' ', ttft.Select(t => t.ToString("F0", CultureInfo.InvariantCulture)))}; turn 10 / turn 1 = {ratio:F2}"));
            }
        }

        foreach (var (reuse, values) in ratios)
        {
            var sorted = values.Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"reuse={reuse}: turn 10 / turn 1 TTFT median {sorted[sorted.Length / 2]:F2} (range {sorted[0]:F2}-{sorted[^1]:F2})"));
        }

        return 0;
    }

    private static async Task<double[]> ConversationAsync(string modelPath, bool reuse, int round)
    {
        var engine = await BenchmarkEngine.StartAsync(
            new ModelOptions { Path = modelPath, Threads = 2, BatchThreads = 2 },
            new SchedulerOptions { Slots = 4, ContextSize = 4 * 2048, StepTokenBudget = 512, PrefixReuse = reuse });

        var history = new List<ChatTurn> { new("system", "You are a helpful assistant who tells short stories.") };
        var ttft = new double[Turns];
        for (var turn = 0; turn < Turns; turn++)
        {
            history.Add(new ChatTurn("user", $"Round {round}, turn {turn + 1}: tell me what happened next to the little fox in the forest."));
            var started = Stopwatch.GetTimestamp();
            var first = 0.0;
            var text = new System.Text.StringBuilder();
            var stream = engine.Submit(new GenerationRequest { Messages = history.ToArray(), MaxTokens = 48, IgnoreEos = true, SessionKey = "bench", Sampling = new() { Temperature = 0 } });
            await foreach (var item in stream.ReadAllAsync())
            {
                if (item is GenerationCompleted done)
                {
                    Console.Error.Write($"[prompt {done.Usage.PromptTokens}, cached {done.Usage.CachedPromptTokens}] ");
                }

                if (item is TextDelta delta)
                {
                    first = first == 0 ? Stopwatch.GetElapsedTime(started).TotalMilliseconds : first;
                    text.Append(delta.Text);
                }
            }

            ttft[turn] = first;
            history.Add(new ChatTurn("assistant", text.ToString()));
        }

        await BenchmarkEngine.StopAsync(engine);
        return ttft;
    }
}
