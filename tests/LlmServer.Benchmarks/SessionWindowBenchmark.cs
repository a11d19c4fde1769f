using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmServer.Hosting;
using LlmServer.Sessions;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Benchmarks;

/// <summary>
/// A conversation that runs past the context window, through the real server's sessions REST API: time to first
/// token of the turns where the window slides against the turns where it stays (KV reused), and against the same
/// sliding turns on a server that prefills every prompt (prefix reuse off). Servers alternate round by round.
/// </summary>
internal static class SessionWindowBenchmark
{
    public static async Task<int> RunAsync(string modelPath, int rounds, int turns, int slotTokens)
    {
        var samples = new Dictionary<string, List<double>> { ["slide"] = [], ["kept"] = [], ["prefill-slide"] = [] };
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var reuse in new[] { true, false })
            {
                var results = await ConversationAsync(modelPath, reuse, turns, slotTokens);
                for (var turn = 1; turn < results.Count; turn++)
                {
                    var slid = results[turn].ContextStart != results[turn - 1].ContextStart;
                    var key = reuse ? (slid ? "slide" : "kept") : (slid ? "prefill-slide" : null);
                    if (key is not null)
                    {
                        samples[key].Add(results[turn].TtftMs);
                    }
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {round} reuse={reuse}: {string.Join(' ', results.Select(r => $"{r.TtftMs:F0}ms@{r.ContextStart}/c{r.Cached}"))}"));
            }
        }

        if (samples.Values.Any(v => v.Count == 0))
        {
            Console.WriteLine("The window never slid, or never stayed: use more turns or a smaller slot (--turns, --slot).");
            return 1;
        }

        var slide = BenchmarkOrchestrator.Median(samples["slide"]);
        var kept = BenchmarkOrchestrator.Median(samples["kept"]);
        var prefill = BenchmarkOrchestrator.Median(samples["prefill-slide"]);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"median TTFT: sliding {slide:F0} ms ({samples["slide"].Count} turns), kept window {kept:F0} ms ({samples["kept"].Count}), sliding with prefix reuse off {prefill:F0} ms ({samples["prefill-slide"].Count})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sliding / kept = {slide / kept:F2} (goal <= 1.5); sliding / prefilling the window = {slide / prefill:F2} (goal <= 0.3)"));
        return 0;
    }

    private static async Task<List<(double TtftMs, int ContextStart, int Cached)>> ConversationAsync(string modelPath, bool reuse, int turns, int slotTokens)
    {
        var app = ServerApplication.Build(
        [
            "--model", modelPath,
            "--urls", "http://127.0.0.1:0",
            "--Logging:LogLevel:Default=Warning",
            "--Scheduler:Slots=1",
            $"--Scheduler:ContextSize={slotTokens}",
            $"--Scheduler:PrefixReuse={reuse}",
            "--Model:Threads=2",
            "--Model:BatchThreads=2",
            $"--Sessions:Database={Path.Combine(Path.GetTempPath(), $"llmserver-bench-{Guid.NewGuid():N}.db")}",
        ]);
        await app.StartAsync();
        try
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var client = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(10) };
            while (!(await client.GetAsync(new Uri("/health/ready", UriKind.Relative))).IsSuccessStatusCode)
            {
                await Task.Delay(100);
            }

            using var created = await client.PostAsJsonAsync(
                new Uri("/api/sessions", UriKind.Relative),
                new CreateSessionRequest("bench", "You are a helpful assistant who tells short stories.", new SessionSettings(Temperature: 0, MaxTokens: 32)));
            var session = (await created.Content.ReadFromJsonAsync<SessionInfo>())!;
            var results = new List<(double, int, int)>();
            for (var turn = 0; turn < turns; turn++)
            {
                results.Add(await TurnAsync(client, session.Id, $"Turn {turn + 1}: tell me what happened next to the little fox in the forest, and what the owl said to him."));
            }

            return results;
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private static async Task<(double TtftMs, int ContextStart, int Cached)> TurnAsync(HttpClient client, string sessionId, string text)
    {
        var started = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{sessionId}/messages")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { text }), Encoding.UTF8, "application/json"),
        };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var ttft = 0.0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
            {
                continue;
            }

            var item = JsonSerializer.Deserialize<ChatStreamEvent>(line["data: ".Length..], JsonSerializerOptions.Web)!;
            if (item.Type == ChatStreamEvent.DeltaType && ttft == 0)
            {
                ttft = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
            else if (item.Type == ChatStreamEvent.DoneType)
            {
                return (ttft, item.ContextStart ?? 0, item.Usage?.CachedTokens ?? 0);
            }
            else if (item.Type == ChatStreamEvent.ErrorType)
            {
                throw new InvalidOperationException($"The turn failed: {item.Code}: {item.Message}");
            }
        }

        throw new InvalidOperationException("The stream ended without done.");
    }
}
