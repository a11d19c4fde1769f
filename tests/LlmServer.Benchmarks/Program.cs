using LlmServer.Benchmarks;

return args.Length > 0 && args[0] == "--child"
    ? await BenchmarkChild.RunAsync(args[1..])
    : await BenchmarkOrchestrator.RunAsync(args);
