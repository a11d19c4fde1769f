using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using LLama;
using LLama.Native;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Threading;

namespace LlmServer.Benchmarks;

/// <summary>One measured configuration, in its own process: the bare decode loop or the scheduler.</summary>
internal static class BenchmarkChild
{
    private const int PromptTokens = 100;
    private const int WarmupTokens = 16;
    private const string Story = "Once upon a time, in a small town by the sea, there lived a girl named Lily who loved to watch the boats come in. Every morning she walked to the harbour with her dog Max, and together they counted the sails. One day a storm came, and the sky turned dark and grey. ";

    // LLMSERVER_BENCH_THREADS compares decode thread counts (the HTTP script passes the same to the server).
    private static readonly int Threads = int.TryParse(Environment.GetEnvironmentVariable("LLMSERVER_BENCH_THREADS"), out var threads) ? threads : 2;
    private static readonly ModelOptions Model = new() { Threads = Threads, BatchThreads = Threads };
    private static readonly SchedulerOptions Scheduler = new() { Slots = 8, ContextSize = 8 * 512, StepTokenBudget = 1024, MaxQueue = 16 };

    public static async Task<int> RunAsync(string[] args)
    {
        var mode = args[0];
        var streams = int.Parse(args[1], CultureInfo.InvariantCulture);
        var modelPath = args[2];
        var tokens = int.Parse(args[3], CultureInfo.InvariantCulture);
        Model.Path = modelPath;

        // The same libgomp setting the server's engine makes, before anything loads the native library.
        Console.Error.WriteLine("bare child: " + OpenMpTuning.Apply());
        NativeLogConfig.llama_log_set((_, _) => { });
        var (tps, tpot, wall) = mode == "bare"
            ? RunBare(streams, tokens)
            : await RunSchedulerAsync(mode, streams, tokens);
        Console.WriteLine(JsonSerializer.Serialize(new BenchmarkResult(Path.GetFileNameWithoutExtension(modelPath), mode, streams, tokens, tps, tpot, wall)));
        return 0;
    }

    /// <summary>The engine's limit: one LLamaBatch of every sequence per step, decoded synchronously on this thread, argmax.</summary>
    private static (double, double, double) RunBare(int streams, int tokens)
    {
        using var vocabularyOnly = ModelLoader.LoadVocabularyOnly(Model.Path!);
        var parameters = ModelLoader.CreateParameters(Model, Scheduler, ModelLoader.TrainingContext(vocabularyOnly));
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        var promptBatch = new LLamaBatch();
        var stepBatch = new LLamaBatch();

        (double, double, double) Generate(string tag, int count)
        {
            for (var s = 0; s < streams; s++)
            {
                context.NativeHandle.MemorySequenceRemove((LLamaSeqId)s, -1, -1);
            }

            var started = Stopwatch.GetTimestamp();
            promptBatch.Clear();
            var next = new int[streams];
            var logitIndex = new int[streams];
            for (var s = 0; s < streams; s++)
            {
                var prompt = Prompt(weights, tag, s);
                for (var i = 0; i < prompt.Length; i++)
                {
                    var index = promptBatch.Add(prompt[i], i, (LLamaSeqId)s, i == prompt.Length - 1);
                    if (i == prompt.Length - 1)
                    {
                        logitIndex[s] = index;
                    }
                }
            }

            Check(context.NativeHandle.Decode(promptBatch));
            for (var s = 0; s < streams; s++)
            {
                next[s] = TensorPrimitives.IndexOfMax<float>(context.NativeHandle.GetLogitsIth(logitIndex[s]));
            }

            var generationStarted = Stopwatch.GetTimestamp();
            for (var step = 1; step < count; step++)
            {
                stepBatch.Clear();
                for (var s = 0; s < streams; s++)
                {
                    logitIndex[s] = stepBatch.Add(next[s], PromptTokens + step - 1, (LLamaSeqId)s, true);
                }

                Check(context.NativeHandle.Decode(stepBatch));
                for (var s = 0; s < streams; s++)
                {
                    next[s] = TensorPrimitives.IndexOfMax<float>(context.NativeHandle.GetLogitsIth(logitIndex[s]));
                }
            }

            var wall = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var perToken = Stopwatch.GetElapsedTime(generationStarted).TotalMilliseconds / (count - 1);
            return (streams * count / wall, perToken, wall);
        }

        Generate("Warm-up", WarmupTokens);
        return Generate("Request", tokens);
    }

    private static async Task<(double, double, double)> RunSchedulerAsync(string mode, int streams, int tokens)
    {
        var engine = await BenchmarkEngine.StartAsync(Model, Scheduler);

        using var weights = ModelLoader.LoadVocabularyOnly(Model.Path!);
        var sampling = mode == "greedy" ? new SamplingOptions { Temperature = 0 } : new SamplingOptions { Temperature = 0.8f, TopP = 0.95f };

        async Task<(double, double, double)> Generate(string tag, int count)
        {
            var started = Stopwatch.GetTimestamp();
            var runs = Enumerable.Range(0, streams).Select(s => Task.Run(async () =>
            {
                var request = new GenerationRequest
                {
                    // The engine adds the BOS itself: detokenized, it would be its text ("<s>") in the prompt.
                    Prompt = engine.Detokenize(Prompt(weights, tag, s).Skip(weights.Vocab.ShouldAddBOS ? 1 : 0)),
                    MaxTokens = count,
                    IgnoreEos = true,
                    Sampling = sampling with { Seed = (uint)s },
                };
                long first = 0;
                long last = 0;
                var generated = 0;
                await foreach (var item in engine.Submit(request).ReadAllAsync())
                {
                    if (item is TextDelta)
                    {
                        last = Stopwatch.GetTimestamp();
                        first = first == 0 ? last : first;
                    }
                    else if (item is GenerationCompleted done)
                    {
                        generated = done.Usage.CompletionTokens;
                    }
                }

                return (generated, Stopwatch.GetElapsedTime(first, last).TotalMilliseconds / Math.Max(1, generated - 1));
            })).ToArray();
            var results = await Task.WhenAll(runs);
            var wall = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var perToken = results.Select(r => r.Item2).Order().ElementAt(results.Length / 2);
            return (results.Sum(r => r.generated) / wall, perToken, wall);
        }

        await Generate("Warm-up", WarmupTokens);
        var measured = await Generate("Request", tokens);
        await BenchmarkEngine.StopAsync(engine);
        return measured;
    }

    /// <summary>About 100 tokens: a per-stream tag first so no stream shares a prefix beyond it.</summary>
    private static int[] Prompt(LLamaWeights weights, string tag, int stream)
    {
        var text = $"{tag} {stream}: " + string.Concat(Enumerable.Repeat(Story, 4));
        var tokens = weights.NativeHandle.Tokenize(text, true, false, System.Text.Encoding.UTF8);
        return tokens.Take(PromptTokens).Select(t => (int)t).ToArray();
    }

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException("decode failed: " + result);
        }
    }
}
