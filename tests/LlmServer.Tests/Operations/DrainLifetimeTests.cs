using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Operations.Lifecycle;
using LlmServer.ReplicaProtocol;
using LlmServer.Sessions;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace LlmServer.Tests.Operations;

/// <summary>
/// The stop signal as <see cref="DrainingLifetime"/> handles it (the test calls what a signal calls), on the real
/// server with its decode steps held at a <see cref="DecodeGate"/>, so the drain lasts exactly as long as the test
/// needs; ShutdownTests send real SIGTERMs to a child process.
/// </summary>
public sealed class DrainLifetimeTests
{
    private const string ChatPath = "/v1/chat/completions";

    [Fact]
    public async Task A_hub_stream_started_before_the_signal_completes_while_new_requests_get_503_with_the_drain_marker_and_the_host_stops_after_it()
    {
        var gate = new DecodeGate();
        var folder = Directory.CreateTempSubdirectory("llmserver-drain-");
        await using var server = await TestServer.StartAsync(
            extraArgs: ["--Server:DrainSeconds=120", $"--Sessions:Database={Path.Combine(folder.FullName, "sessions.db")}", $"--Sessions:KvCacheDirectory={Path.Combine(folder.FullName, "kv")}"],
            configureServices: gate.Install);
        try
        {
            var stopping = Watch(server.App);
            var shutdown = server.App.WaitForShutdownAsync();
            await using var hub = new HubConnectionBuilder().WithUrl(new Uri(server.BaseAddress, "/hubs/chat")).Build();
            await hub.StartAsync();
            var session = await hub.CreateAsync(maxTokens: 24);

            gate.Close();
            var stream = await hub.StreamAsChannelAsync<ChatStreamEvent>("SendMessage", session.Id, "Once upon a time");
            await gate.Blocked;
            Lifetime(server).RequestStop();

            // The drain: still listening, admission closed with the marker a router reads, readiness says draining.
            using (var refused = await server.Client.PostAsync(new Uri(ChatPath, UriKind.Relative), Json("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}""")))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.Equal(DrainMarker.Value, Assert.Single(refused.Headers.GetValues(DrainMarker.Header)));
                Assert.NotNull(refused.Headers.RetryAfter);
                using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
                Assert.Equal("server_shutting_down", error.RootElement.GetProperty("error").GetProperty("code").GetString());
            }

            using (var ready = await server.Client.GetAsync(new Uri("/health/ready", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
                Assert.Contains("draining", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            // The gate still holds the generation, so the drain cannot have ended: the host has not begun to stop.
            Assert.False(stopping.IsCompleted);

            gate.Open();

            // Read to the answer's last event: the server closes the connection once its stream is over, after the
            // last bytes went out.
            var events = new List<ChatStreamEvent>();
            while (events.LastOrDefault()?.Type is not ChatStreamEvent.DoneType and not ChatStreamEvent.ErrorType)
            {
                events.Add(await stream.ReadAsync());
            }

            Assert.Equal(ChatStreamEvent.DoneType, events[^1].Type);
            Assert.Contains(events, e => e.Type == ChatStreamEvent.DeltaType && !string.IsNullOrEmpty(e.Text));

            // The last stream's end ends the drain, and the host stops (Program's RunAsync returns: the process exits).
            await stopping.WaitAsync(TimeSpan.FromSeconds(60));
            await shutdown.WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            gate.Open();
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_second_signal_stops_the_host_at_once_and_cancels_the_running_generation()
    {
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(extraArgs: ["--Server:DrainSeconds=120"], configureServices: gate.Install);
        try
        {
            var stopping = Watch(server.App);
            var shutdown = server.App.WaitForShutdownAsync();

            gate.Close();
            var request = server.Client.PostAsync(
                new Uri(ChatPath, UriKind.Relative),
                Json("""{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":40,"ignore_eos":true,"stream":true}"""));
            await gate.Blocked;

            var lifetime = Lifetime(server);
            lifetime.RequestStop();
            Assert.False(stopping.IsCompleted);

            // With the generation still held, only the second signal can stop the host.
            lifetime.RequestStop();
            await stopping.WaitAsync(TimeSpan.FromSeconds(60));

            gate.Open();
            using var response = await request;
            var body = await response.Content.ReadAsStringAsync();
            Assert.Contains("\"cancelled\"", body, StringComparison.Ordinal);
            Assert.DoesNotContain("\"finish_reason\":\"length\"", body, StringComparison.Ordinal);
            await shutdown.WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            gate.Open();
        }
    }

    [Fact]
    public async Task A_generation_the_drain_cancels_after_it_ran_is_answered_without_the_drain_marker()
    {
        // A router resends a marked refusal to another replica: a generation that already ran must not be done twice.
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(extraArgs: ["--Server:DrainSeconds=120"], configureServices: gate.Install);
        try
        {
            var stopping = Watch(server.App);
            gate.Close();
            var request = server.Client.PostAsync(
                new Uri(ChatPath, UriKind.Relative),
                Json("""{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":40,"ignore_eos":true}"""));
            await gate.Blocked;

            var lifetime = Lifetime(server);
            lifetime.RequestStop();
            lifetime.RequestStop();
            await stopping.WaitAsync(TimeSpan.FromSeconds(60));
            gate.Open();

            using var response = await request;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Contains("\"cancelled\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.False(response.Headers.Contains(DrainMarker.Header));
        }
        finally
        {
            gate.Open();
        }
    }

    private static DrainingLifetime Lifetime(TestServer server) => Assert.IsType<DrainingLifetime>(server.Services.GetRequiredService<IHostLifetime>());

    /// <summary>Completes when the host begins to stop.</summary>
    private static Task Watch(WebApplication app)
    {
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        app.Lifetime.ApplicationStopping.Register(() => stopping.TrySetResult());
        return stopping.Task;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");
}
