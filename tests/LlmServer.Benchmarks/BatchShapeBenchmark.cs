using System.Diagnostics;
using LLama;
using LLama.Native;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Engine.Threading;

namespace LlmServer.Benchmarks;

/// <summary>
/// What one decode costs by the shape of its batch, on contexts built as the server builds them (KV split per
/// sequence, 8 slots), flash attention on against off, shapes interleaved: single tokens of generating sequences in
/// one run of slots against scattered ones, and prompt chunks of several sizes deep in a prompt, alone and beside
/// generation, for each KV cache type asked for. The figures behind the scheduler's slot choice,
/// <see cref="SchedulerOptions.MinPromptChunk"/> and the default cache type.
/// </summary>
internal static class BatchShapeBenchmark
{
    private const int PromptSlot = 5;

    private static readonly (string Name, int[] Generating, int Chunk)[] Shapes =
    [
        ("slot 0 generates", [0], 0),
        ("slots 0-3 generate", [0, 1, 2, 3], 0),
        ("slots 0,2,4,6 generate", [0, 2, 4, 6], 0),
        ("the deep slot generates", [], 1),
        ("all 8 slots generate", [0, 1, 2, 3, 4, 6, 7], 1),
        ("chunk of 16", [], 16),
        ("chunk of 32", [], 32),
        ("chunk of 48", [], 48),
        ("chunk of 64", [], 64),
        ("chunk of 128", [], 128),
        ("chunk of 256", [], 256),
        ("slots 1-4 generate + chunk of 64", [1, 2, 3, 4], 64),
        ("slots 1-4 generate + chunk of 65", [1, 2, 3, 4], 65),
    ];

    public static int Run(string modelPath, int depth, int generatingDepth, int rounds, int threads, IReadOnlyList<string> cacheTypes)
    {
        Console.Error.WriteLine("batch shapes: " + OpenMpTuning.Apply());
        NativeLogConfig.llama_log_set((_, _) => { });
        var model = new ModelOptions { Path = modelPath, Threads = threads, BatchThreads = threads };
        var scheduler = new SchedulerOptions { Slots = 8, ContextSize = 8 * 4096, StepTokenBudget = 512 };
        using var weights = LLamaWeights.LoadFromFile(ModelLoader.CreateParameters(model, scheduler, trainingContext: 0));
        var random = new Random(1);
        var sides = new List<Side>();
        foreach (var cacheType in cacheTypes)
        {
            scheduler.KvCacheType = cacheType;
            var parameters = ModelLoader.CreateParameters(model, scheduler, trainingContext: 0);

            // llama.cpp needs flash attention for a quantized V cache.
            foreach (var flashAttention in KvCacheType.IsQuantized(cacheType) ? [true] : new[] { true, false })
            {
                parameters.FlashAttention = flashAttention;
                var name = (cacheTypes.Count > 1 ? cacheType + ", " : string.Empty) + (flashAttention ? "flash" : "no flash");
                sides.Add(new Side(name, weights.CreateContext(parameters), weights, depth, generatingDepth, random));
            }
        }

        var times = new List<double>[Shapes.Length, sides.Count];
        for (var round = 0; round <= rounds; round++)
        {
            for (var shape = 0; shape < Shapes.Length; shape++)
            {
                for (var side = 0; side < sides.Count; side++)
                {
                    var ms = sides[side].Decode(Shapes[shape].Generating, Shapes[shape].Chunk);
                    if (round > 0)
                    {
                        (times[shape, side] ??= []).Add(ms);
                    }
                }
            }
        }

        Console.WriteLine($"{Path.GetFileNameWithoutExtension(modelPath)}, KV cache {string.Join('/', cacheTypes)}, {threads} threads, prompt {depth} tokens deep, generating sequences {generatingDepth} deep; median of {rounds} [quartiles] (ms, and ms a prompt token)");
        for (var shape = 0; shape < Shapes.Length; shape++)
        {
            var line = $"{Shapes[shape].Name,-34}";
            for (var side = 0; side < sides.Count; side++)
            {
                var sorted = times[shape, side];
                sorted.Sort();
                var median = sorted[sorted.Count / 2];
                var perToken = Shapes[shape].Chunk > 1 ? $" ({median / Shapes[shape].Chunk:F2}/token)" : string.Empty;

                // The quartiles show how noisy the machine was: a median alone hides it.
                var spread = $" [{sorted[sorted.Count / 4]:F0}-{sorted[sorted.Count * 3 / 4]:F0}]";
                line += $"  {sides[side].Name}: {median,7:F1}{spread,-12}{perToken,-15}";
            }

            Console.WriteLine(line);
        }

        foreach (var side in sides)
        {
            side.Context.Dispose();
        }

        return 0;
    }

    /// <summary>A context whose slots hold their sequences; each measured decode is removed again, so depths stay.</summary>
    private sealed class Side
    {
        private readonly int[] _positions = new int[8];
        private readonly LLamaBatch _batch = new();
        private readonly Random _random;
        private readonly int _vocabulary;

        public Side(string name, LLamaContext context, LLamaWeights weights, int depth, int generatingDepth, Random random)
        {
            Name = name;
            Context = context;
            _random = random;
            _vocabulary = weights.Vocab.Count;
            for (var slot = 0; slot < _positions.Length; slot++)
            {
                var target = slot == PromptSlot ? depth : generatingDepth;
                while (_positions[slot] < target)
                {
                    var count = Math.Min(512, target - _positions[slot]);
                    for (var i = 0; i < count; i++)
                    {
                        _batch.Add(Token(), _positions[slot]++, (LLamaSeqId)slot, i == count - 1);
                    }

                    Check(Context.NativeHandle.Decode(_batch));
                    _batch.Clear();
                }
            }
        }

        public string Name { get; }

        public LLamaContext Context { get; }

        public double Decode(int[] generating, int chunk)
        {
            // In ascending slot order, as StepDecoder builds its batches.
            foreach (var slot in generating.Append(PromptSlot).Order())
            {
                var count = slot == PromptSlot ? chunk : 1;
                for (var i = 0; i < count; i++)
                {
                    _batch.Add(Token(), _positions[slot] + i, (LLamaSeqId)slot, i == count - 1);
                }
            }

            var started = Stopwatch.GetTimestamp();
            Check(Context.NativeHandle.Decode(_batch));
            var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            _batch.Clear();
            foreach (var slot in generating.Append(PromptSlot))
            {
                Context.NativeHandle.MemorySequenceRemove((LLamaSeqId)slot, _positions[slot], -1);
            }

            return ms;
        }

        private LLamaToken Token() => (LLamaToken)_random.Next(10, Math.Min(_vocabulary, 30000));

        private static void Check(DecodeResult result)
        {
            if (result != DecodeResult.Ok)
            {
                throw new InvalidOperationException("Decode failed: " + result);
            }
        }
    }
}
