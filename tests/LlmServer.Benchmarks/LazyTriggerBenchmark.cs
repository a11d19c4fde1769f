using System.Diagnostics;
using System.Text;
using System.Text.Json;
using LLama;
using LLama.Native;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Reasoning;
using LlmServer.Engine.Sampling;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Tools;

namespace LlmServer.Benchmarks;

/// <summary>
/// What one sampled token costs under a lazy tool-call grammar (tool_choice auto) that has not fired, by how much
/// answer there is: llama.cpp appends each token to the text it matches the trigger patterns against, at every token,
/// on the scheduler thread, where a trigger token costs a lookup. The chain is the server's (the lazy grammar, then
/// greedy) on a real context's logits; the answer is grown with long word tokens that hold no call.
/// </summary>
internal static class LazyTriggerBenchmark
{
    private const int Measured = 24;

    /// <summary>The scheduler thread's stack: llama.cpp's std::regex recurses once a character.</summary>
    private const int StackBytes = 256 * 1024 * 1024;

    public static int Run(string modelPath, IReadOnlyList<int> marks)
    {
        var exit = 0;
        var thread = new Thread(() => exit = RunOnLargeStack(modelPath, marks), StackBytes);
        thread.Start();
        thread.Join();
        return exit;
    }

    private static int RunOnLargeStack(string modelPath, IReadOnlyList<int> marks)
    {
        NativeLogConfig.llama_log_set((_, _) => { });
        var model = new ModelOptions { Path = modelPath, Threads = 1, BatchThreads = 1 };
        var parameters = ModelLoader.CreateParameters(model, new SchedulerOptions { Slots = 1, ContextSize = 512 }, trainingContext: 0);
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        var batch = new LLamaBatch();
        batch.Add(weights.Vocab.BOS ?? 1, 0, LLamaSeqId.Zero, true);
        if (context.NativeHandle.Decode(batch) != DecodeResult.Ok)
        {
            throw new InvalidOperationException("decode failed");
        }

        var vocabulary = new LlamaVocabulary(weights);
        var filler = WordTokens(weights);
        var tool = new ToolDefinition("get_weather", "Weather of a city.", JsonDocument.Parse("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""").RootElement);
        var hermes = ToolGrammar.Build(ToolCallFormat.Hermes, [tool], ToolChoice.Auto, parallelCalls: true)!;
        var generic = ToolGrammar.Build(ToolCallFormat.Generic, [tool], ToolChoice.Auto, parallelCalls: true)!;
        var marker = ToolGrammar.WordPattern(hermes.TriggerWords[0]);

        // The vocabulary has no <tool_call> token: any token the greedy chain never picks stands for it.
        using (var probe = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default()))
        {
            probe.AddGreedySampler();
            var greedy = (int)probe.Sample(context.NativeHandle, 0);
            var standIn = greedy == vocabulary.Count - 1 ? vocabulary.Count - 2 : vocabulary.Count - 1;
            (string Name, string? Grammar, LazyTriggers Triggers)[] cases =
            [
                ("no grammar", null, new([], [])),
                ("Hermes, marker as pattern (before)", hermes.Grammar, new(ToolGrammar.WholeText([marker]), [])),
                ("Hermes, marker as token (after)", hermes.Grammar, new([], [standIn])),
                ("Hermes past reasoning, pattern (kept)", hermes.Grammar, new(ReasoningStage.AnchorTriggers([marker], opensInPrompt: false), [])),
                ("Generic / Llama 3 '{' at answer start", generic.Grammar, new(ToolGrammar.WholeText(generic.TriggerPatterns), [])),
            ];

            Console.WriteLine($"{Path.GetFileNameWithoutExtension(modelPath)}: µs per sampled token (median of {Measured} [quartiles]) by characters of answer");
            foreach (var (name, grammar, triggers) in cases)
            {
                var line = $"{name,-40}";
                foreach (var (chars, times) in Measure(context, weights, grammar, triggers, filler, marks))
                {
                    line += $"  {chars,6}: {times[times.Length / 2],8:F1} [{times[times.Length / 4]:F0}-{times[times.Length * 3 / 4]:F0}]";
                }

                Console.WriteLine(line);
            }
        }

        return 0;
    }

    /// <summary>For each mark: the chain fed filler up to that many characters, then timed sampling the next tokens.</summary>
    private static IEnumerable<(int Chars, double[] Micros)> Measure(
        LLamaContext context, LLamaWeights weights, string? grammar, LazyTriggers triggers, List<(int Token, int Chars)> filler, IReadOnlyList<int> marks)
    {
        using var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        if (grammar is not null)
        {
            LazyGrammar.Add(chain, weights.NativeHandle, grammar, triggers);
        }

        chain.AddGreedySampler();
        var chars = 0;
        var next = 0;
        var results = new List<(int, double[])>();
        foreach (var mark in marks)
        {
            while (chars < mark)
            {
                var (token, length) = filler[next++ % filler.Count];
                chain.Accept((LLamaToken)token);
                chars += length;
            }

            var micros = new double[Measured];
            for (var i = 0; i < micros.Length; i++)
            {
                var started = Stopwatch.GetTimestamp();
                chain.Sample(context.NativeHandle, 0);
                micros[i] = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
            }

            Array.Sort(micros);
            results.Add((chars, micros));
        }

        return results;
    }

    /// <summary>Tokens of ten or more letters with their leading space: prose that holds no call, few tokens a character.</summary>
    private static List<(int Token, int Chars)> WordTokens(LLamaWeights weights)
    {
        var words = new List<(int, int)>();
        Span<byte> piece = stackalloc byte[64];
        for (var token = 0; token < weights.Vocab.Count; token++)
        {
            var length = (int)weights.NativeHandle.TokenToSpan(token, piece, 0, true);
            if (length is >= 11 and <= 64)
            {
                var text = Encoding.UTF8.GetString(piece[..length]);
                if (text[0] == ' ' && text.AsSpan(1).ContainsAnyExceptInRange('a', 'z') == false)
                {
                    words.Add((token, text.Length));
                }
            }
        }

        return words;
    }
}
