using LlmServer.Benchmarks;

using LlmServer.Testing;

return args switch
{
    ["--child", .. var rest] => await BenchmarkChild.RunAsync(rest),
    ["--sessions-window", .. var rest] => await SessionWindowBenchmark.RunAsync(
        BenchmarkOrchestrator.Option(rest, "--model") ?? TestModels.Synth110M,
        rounds: BenchmarkOrchestrator.IntOption(rest, "--rounds", 2),
        turns: BenchmarkOrchestrator.IntOption(rest, "--turns", 30),
        slotTokens: BenchmarkOrchestrator.IntOption(rest, "--slot", 1024)),
    ["--batch-shapes", .. var rest] => BatchShapeBenchmark.Run(
        BenchmarkOrchestrator.Option(rest, "--model") ?? TestModels.Synth110M,
        depth: BenchmarkOrchestrator.IntOption(rest, "--depth", 1500),
        generatingDepth: BenchmarkOrchestrator.IntOption(rest, "--generating-depth", 200),
        rounds: BenchmarkOrchestrator.IntOption(rest, "--rounds", 8),
        threads: BenchmarkOrchestrator.IntOption(rest, "--threads", 2),
        cacheTypes: (BenchmarkOrchestrator.Option(rest, "--kv-types") ?? "f16").Split(',')),
    ["--lazy-trigger", .. var rest] => LazyTriggerBenchmark.Run(
        BenchmarkOrchestrator.Option(rest, "--model") ?? TestModels.TinyRandomLlama2,
        marks: (BenchmarkOrchestrator.Option(rest, "--chars") ?? "1000,8000,32000").Split(',').Select(int.Parse).ToList()),
    ["--serve-fake", .. var rest] => await FakeDecodeServer.RunAsync(rest),
    ["--sessions-kv", .. var rest] => await SessionKvBenchmark.RunAsync(rest.Length > 0 ? rest[0] : TestModels.Synth110M, rounds: 1),
    ["--sessions", .. var rest] => await SessionTurnsBenchmark.RunAsync(rest.Length > 0 ? rest[0] : TestModels.Synth110M, rounds: 3)
        + await SessionKvBenchmark.RunAsync(rest.Length > 0 ? rest[0] : TestModels.Synth110M, rounds: 1),
    _ => await BenchmarkOrchestrator.RunAsync(args),
};
