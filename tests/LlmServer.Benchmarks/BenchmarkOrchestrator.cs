using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LlmServer.Testing;

namespace LlmServer.Benchmarks;

/// <summary>
/// Runs every configuration in a fresh child process, interleaved round by round (the machines drift over
/// minutes), and prints medians with ranges and the scheduler-to-bare-loop ratios. A child per run keeps each
/// configuration's decode on one thread for the whole process (OpenMP worker groups are per calling thread).
/// </summary>
internal static class BenchmarkOrchestrator
{
    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = IntOption(args, "--rounds", 3);
        var tokens = IntOption(args, "--tokens", 128);
        var streams = (Option(args, "--streams") ?? "1,4,8").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var models = Option(args, "--models")?.Split(',') ?? [TestModels.Synth110M, TestModels.Stories260K];
        var modes = (Option(args, "--modes") ?? "bare,greedy,topp").Split(',');
        var results = new List<BenchmarkResult>();

        foreach (var model in models)
        {
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var n in streams)
                {
                    foreach (var mode in modes)
                    {
                        var result = await RunChildAsync(mode, n, model, tokens);
                        results.Add(result);
                        Console.Error.WriteLine($"round {round} {Path.GetFileName(model)} {mode} x{n}: {result.TokensPerSecond:F1} tok/s, {result.TimePerTokenMs:F2} ms/token");
                    }
                }
            }
        }

        Print(results, modes);
        return 0;
    }

    private static async Task<BenchmarkResult> RunChildAsync(string mode, int streams, string model, int tokens)
    {
        var self = Environment.ProcessPath!;
        var start = new ProcessStartInfo(self)
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(BenchmarkOrchestrator).Assembly.Location);
        }

        foreach (var arg in new[] { "--child", mode, streams.ToString(CultureInfo.InvariantCulture), model, tokens.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"child {mode} x{streams} failed ({process.ExitCode}): {output}");
        }

        var line = output.Split('\n').Last(l => l.StartsWith('{'));
        return JsonSerializer.Deserialize<BenchmarkResult>(line)!;
    }

    private static void Print(List<BenchmarkResult> results, string[] modes)
    {
        Console.WriteLine("| model | streams | mode | tok/s median (range) | ms/token median (range) | vs bare tok/s | vs bare ms/token |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- |");
        foreach (var group in results.GroupBy(r => (r.Model, r.Streams)))
        {
            var bare = group.Where(r => r.Mode == "bare").ToList();
            foreach (var mode in modes)
            {
                var runs = group.Where(r => r.Mode == mode).ToList();
                if (runs.Count == 0)
                {
                    continue;
                }

                var tps = Median(runs.Select(r => r.TokensPerSecond));
                var tpot = Median(runs.Select(r => r.TimePerTokenMs));
                var ratio = bare.Count > 0 ? (tps / Median(bare.Select(r => r.TokensPerSecond))).ToString("F2", CultureInfo.InvariantCulture) : "-";
                var tpotRatio = bare.Count > 0 ? (tpot / Median(bare.Select(r => r.TimePerTokenMs))).ToString("F2", CultureInfo.InvariantCulture) : "-";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {group.Key.Model} | {group.Key.Streams} | {mode} | {tps:F1} ({runs.Min(r => r.TokensPerSecond):F1}-{runs.Max(r => r.TokensPerSecond):F1}) | {tpot:F2} ({runs.Min(r => r.TimePerTokenMs):F2}-{runs.Max(r => r.TimePerTokenMs):F2}) | {ratio} | {tpotRatio} |"));
            }
        }
    }

    internal static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    internal static string? Option(string[] args, string name)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }

    internal static int IntOption(string[] args, string name, int fallback) =>
        Option(args, name) is { } value ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;
}

internal sealed record BenchmarkResult(string Model, string Mode, int Streams, int Tokens, double TokensPerSecond, double TimePerTokenMs, double WallSeconds);
