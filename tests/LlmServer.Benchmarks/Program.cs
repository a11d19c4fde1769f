using LlmServer.Benchmarks;

using LlmServer.Testing;

return args switch
{
    ["--child", .. var rest] => await BenchmarkChild.RunAsync(rest),
    ["--serve-fake", .. var rest] => await FakeDecodeServer.RunAsync(rest),
    ["--sessions", .. var rest] => await SessionTurnsBenchmark.RunAsync(rest.Length > 0 ? rest[0] : TestModels.Synth110M, rounds: 3),
    _ => await BenchmarkOrchestrator.RunAsync(args),
};
