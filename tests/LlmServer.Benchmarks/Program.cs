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
    ["--sessions", .. var rest] => await SessionTurnsBenchmark.RunAsync(rest.Length > 0 ? rest[0] : TestModels.Synth110M, rounds: 3),
    _ => await BenchmarkOrchestrator.RunAsync(args),
};
