using System.Diagnostics;
using System.Globalization;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.KvCache;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Benchmarks;

/// <summary>
/// Two conversation scenarios for the KV-keeping features, each run with the feature on and off, interleaved:
/// <list type="bullet">
/// <item>a conversation 30 turns past its window, the window chosen as the sessions feature does (system prompt, the
/// most recent whole turns that fit, sliding down to a low-water mark when full): time to first token of sliding
/// turns with the warm slide, against its non-sliding turns and against sliding turns that prefill the window;</item>
/// <item>16 conversations round-robin over 4 slots, 10 turns each: median time to first token with the disk KV cache
/// against without it.</item>
/// </list>
/// </summary>
internal static class SessionKvBenchmark
{
    private const int SlotContext = 1024;
    private const int AnswerTokens = 32;
    private const int WarmUpTurns = 8;
    private const int MeasuredTurns = 30;

    public static async Task<int> RunAsync(string modelPath, int rounds)
    {
        var sliding = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        var steady = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        var disk = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var warm in new[] { true, false })
            {
                var (slid, other) = await SlidingConversationAsync(modelPath, warm, round);
                sliding[warm].AddRange(slid);
                steady[warm].AddRange(other);
                Console.WriteLine(Invariant($"round {round} warm slide={warm}: sliding turns {slid.Count}, TTFT median {Median(slid):F0} ms; other turns median {Median(other):F0} ms"));
            }

            foreach (var cached in new[] { true, false })
            {
                var ttft = await RoundRobinAsync(modelPath, cached, round);
                disk[cached].AddRange(ttft);
                Console.WriteLine(Invariant($"round {round} disk KV cache={cached}: TTFT median {Median(ttft):F0} ms over {ttft.Count} turns"));
            }
        }

        Console.WriteLine(Invariant($"sliding turns, warm: TTFT median {Median(sliding[true]):F0} ms; non-sliding turns {Median(steady[true]):F0} ms; sliding turns prefilling the window {Median(sliding[false]):F0} ms"));
        Console.WriteLine(Invariant($"warm sliding / non-sliding = {Median(sliding[true]) / Median(steady[true]):F2} (goal <= 1.5)"));
        Console.WriteLine(Invariant($"warm sliding / prefilled sliding = {Median(sliding[true]) / Median(sliding[false]):F2} (goal <= 0.3)"));
        Console.WriteLine(Invariant($"round robin, 16 conversations on 4 slots, turns 2-10: TTFT median with the disk KV cache {Median(disk[true]):F0} ms, without {Median(disk[false]):F0} ms, ratio {Median(disk[true]) / Median(disk[false]):F2} (goal <= 0.25)"));
        return 0;
    }

    private static async Task<(List<double> Sliding, List<double> Other)> SlidingConversationAsync(string modelPath, bool warmSlide, int round)
    {
        var engine = await BenchmarkEngine.StartAsync(
            new ModelOptions { Path = modelPath, Threads = 2, BatchThreads = 2 },
            new SchedulerOptions { Slots = 4, ContextSize = 4 * SlotContext, StepTokenBudget = 512, WarmSlide = warmSlide });
        var system = new ChatTurn("system", "You are a helpful assistant who tells short stories about a fox and its friends in the forest.");
        var history = new List<ChatTurn>();
        var windowStart = 0;
        var sliding = new List<double>();
        var other = new List<double>();
        var session = $"slide-{round}-{warmSlide}";
        for (var turn = 0; turn < WarmUpTurns + MeasuredTurns; turn++)
        {
            history.Add(new ChatTurn("user", $"Turn {turn + 1} of round {round}: what did the little fox find next, and who did it meet on the way to the river by the old oak tree?"));
            var previousStart = windowStart;
            windowStart = Window(engine, system, history, windowStart);
            var (ttft, text, usage) = await TurnAsync(engine, [system, .. history.Skip(windowStart)], session);
            history.Add(new ChatTurn("assistant", text));
            if (turn < WarmUpTurns)
            {
                continue;
            }

            (windowStart != previousStart ? sliding : other).Add(ttft);
            Console.Error.Write(Invariant($"[{(windowStart != previousStart ? "slide" : "turn")} prompt {usage.PromptTokens} cached {usage.CachedPromptTokens}] "));
        }

        Console.Error.WriteLine();
        await BenchmarkEngine.StopAsync(engine);
        return (sliding, other);
    }

    /// <summary>
    /// The first history message the model sees: unchanged while the window fits the slot with room for the answer;
    /// when it does not, whole turns are dropped from the front until the prompt is under 75% of the slot.
    /// </summary>
    private static int Window(LlmEngine engine, ChatTurn system, List<ChatTurn> history, int start)
    {
        if (PromptTokens(engine, system, history, start) + AnswerTokens <= SlotContext)
        {
            return start;
        }

        while (start < history.Count - 1 && PromptTokens(engine, system, history, start) > SlotContext * 3 / 4)
        {
            start += 2;
        }

        return start;
    }

    private static int PromptTokens(LlmEngine engine, ChatTurn system, List<ChatTurn> history, int start) =>
        engine.Tokenize(engine.ApplyChatTemplate([system, .. history.Skip(start)], []), addSpecial: true, parseSpecial: true).Count;

    private static async Task<List<double>> RoundRobinAsync(string modelPath, bool diskCache, int round)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"llmserver-bench-kv-{Environment.ProcessId}-{round}");
        var options = new KvCacheOptions { KvCacheDirectory = diskCache ? directory : string.Empty };
        var engine = await BenchmarkEngine.StartAsync(
            new ModelOptions { Path = modelPath, Threads = 2, BatchThreads = 2 },
            new SchedulerOptions { Slots = 4, ContextSize = 4 * 2048, StepTokenBudget = 512 },
            options);
        var histories = Enumerable.Range(0, 16).Select(_ => new List<ChatTurn> { new("system", "You are a helpful assistant who tells short stories.") }).ToArray();
        var ttft = new List<double>();
        for (var turn = 0; turn < 10; turn++)
        {
            for (var conversation = 0; conversation < histories.Length; conversation++)
            {
                var history = histories[conversation];
                history.Add(new ChatTurn("user", $"Conversation {conversation}, turn {turn + 1}: tell me what happened next to the little fox in the forest."));
                var (first, text, _) = await TurnAsync(engine, [.. history], $"rr-{round}-{conversation}");
                history.Add(new ChatTurn("assistant", text));
                if (turn > 0)
                {
                    ttft.Add(first);
                }
            }
        }

        await BenchmarkEngine.StopAsync(engine);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        return ttft;
    }

    private static async Task<(double Ttft, string Text, GenerationUsage Usage)> TurnAsync(LlmEngine engine, ChatTurn[] messages, string session)
    {
        var started = Stopwatch.GetTimestamp();
        var first = 0.0;
        var text = new System.Text.StringBuilder();
        GenerationUsage? usage = null;
        var stream = engine.Submit(new GenerationRequest { Messages = messages, MaxTokens = AnswerTokens, IgnoreEos = true, SessionKey = session, Sampling = new() { Temperature = 0 } });
        await foreach (var item in stream.ReadAllAsync())
        {
            if (item is TextDelta delta)
            {
                first = first == 0 ? Stopwatch.GetElapsedTime(started).TotalMilliseconds : first;
                text.Append(delta.Text);
            }
            else if (item is GenerationCompleted done)
            {
                usage = done.Usage;
            }
        }

        return (first, text.ToString(), usage!);
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
