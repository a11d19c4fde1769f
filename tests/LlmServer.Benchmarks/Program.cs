using LlmServer.Benchmarks;

using LlmServer.Testing;

return args switch
{
    ["--child", .. var rest] => await BenchmarkChild.RunAsync(rest),
    ["--sessions-window", .. var rest] => await SessionWindowBenchmark.RunAsync(rest.Length > 0 ? rest[0] : TestModels.Synth110M, rounds: 2, turns: 30, slotTokens: 1024),
    ["--sessions", .. var rest] => await SessionTurnsBenchmark.RunAsync(rest.Length > 0 ? rest[0] : TestModels.Synth110M, rounds: 3),
    _ => await BenchmarkOrchestrator.RunAsync(args),
};
