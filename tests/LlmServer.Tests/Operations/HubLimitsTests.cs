using System.Net;
using System.Reflection;
using System.Text.Json;
using LlmServer.Operations.Limits;
using LlmServer.Sessions;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Sessions;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;

namespace LlmServer.Tests.Operations;

/// <summary>The hubs take the key as access_token and share the per-key generation allowance with HTTP.</summary>
public sealed class HubLimitsTests
{
    /// <summary>Hub methods that stream a generation without starting one: they re-attach to a running one, which holds its permit.</summary>
    private static readonly string[] Reattaching = ["ResumeStream"];

    [Fact]
    public void Every_hub_method_that_streams_a_generation_is_marked_as_running_the_model()
    {
        var hubs = typeof(ChatHub).Assembly.GetTypes().Where(t => !t.IsAbstract && t.IsSubclassOf(typeof(Hub))).ToList();
        Assert.Contains(typeof(ChatHub), hubs);
        var streaming = hubs
            .SelectMany(hub => hub.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Where(method => StreamsGeneration(method.ReturnType))
            .ToList();
        Assert.Contains(streaming, method => method.Name == "SendMessage");

        var wrong = streaming
            .Where(method => method.IsDefined(typeof(RunsModelAttribute)) == Reattaching.Contains(method.Name))
            .Select(method => $"{method.DeclaringType!.Name}.{method.Name}")
            .ToList();
        Assert.True(wrong.Count == 0, $"marked wrongly (a method that starts a generation needs [RunsModel], a re-attach must not have it): {string.Join(", ", wrong)}");

        // The marker is what counts: a method that does not stream generation events is never marked by mistake.
        var markedElsewhere = hubs
            .SelectMany(hub => hub.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Where(method => method.IsDefined(typeof(RunsModelAttribute)) && !StreamsGeneration(method.ReturnType));
        Assert.Empty(markedElsewhere);
    }

    private static bool StreamsGeneration(Type returnType) =>
        returnType.IsGenericType
        && (returnType.GetGenericTypeDefinition() == typeof(IAsyncEnumerable<>) || returnType.GetGenericTypeDefinition() == typeof(System.Threading.Channels.ChannelReader<>))
        && returnType.GetGenericArguments()[0] == typeof(ChatStreamEvent);

    [Fact]
    public async Task A_key_generating_over_HTTP_cannot_start_another_generation_on_the_hub()
    {
        var data = Directory.CreateTempSubdirectory("llmserver-sessions-");
        try
        {
            // The HTTP stream's ending is held back (the only ignore_eos request here): it is still being answered, and
            // holds key A's permit, when the hub call comes, however fast the model writes its 2,000 tokens.
            await using var server = await TestServer.StartAsync(
                extraArgs:
                [
                    $"--Auth:ApiKeys:0={AuthTests.KeyA}", $"--Auth:ApiKeys:1={AuthTests.KeyB}", "--Limits:ConcurrentGenerationsPerKey=1",
                    "--Scheduler:Slots=2", "--Scheduler:ContextSize=4096", $"--Sessions:Database={Path.Combine(data.FullName, "sessions.db")}",
                ],
                configureServices: services => HeldGenerator.Install(services, holds: request => request.IgnoreEos));

            await using (var anonymous = Connect(server, key: null))
            {
                var refused = await Assert.ThrowsAsync<HttpRequestException>(() => anonymous.StartAsync());
                Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            }

            using var running = await AuthTests.SendAsync(
                server,
                HttpMethod.Post,
                "/v1/completions",
                AuthTests.KeyA,
                new StringContent("""{"model":"stories260K","prompt":"Once upon a time","max_tokens":2000,"ignore_eos":true,"stream":true}""", System.Text.Encoding.UTF8, "application/json"),
                HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await running.Content.ReadAsStreamAsync());
            Assert.NotNull(await StreamGuard.NextDataAsync(reader));

            // Read on meanwhile: a stream its client leaves unread is cut off after Server:StalledClientSeconds, which
            // frees the permit; on a starved machine the hub calls below can take that long.
            using var stopReading = new CancellationTokenSource();
            var reading = Task.Run(async () =>
            {
                while (await reader.ReadLineAsync(stopReading.Token) is not null)
                {
                }
            });

            await using var hubA = Connect(server, AuthTests.KeyA);
            await hubA.StartAsync();
            var sessionA = await hubA.InvokeAsync<JsonElement>("CreateSession", (object?)null);
            var limited = await Assert.ThrowsAsync<HubException>(() => hubA.StreamAsync<JsonElement>("SendMessage", sessionA.GetProperty("id").GetString(), "Hello").ReadEachAsync(_ => { }));
            Assert.StartsWith("rate_limit_exceeded:", limited.Message.Split("HubException: ").Last(), StringComparison.Ordinal);
            // Cancelling the read drops the connection, which frees the permit and the CPU for key B below; the stream
            // was still open (held) until then.
            Assert.False(reading.IsCompleted, "the held stream ended early");
            await stopReading.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reading);
            running.Dispose();

            await using var hubB = Connect(server, AuthTests.KeyB);
            await hubB.StartAsync();
            var sessionB = await hubB.InvokeAsync<JsonElement>("CreateSession", (object?)null);
            var events = 0;
            await hubB.StreamAsync<JsonElement>("SendMessage", sessionB.GetProperty("id").GetString(), "Hello").ReadEachAsync(_ => events++);

            Assert.True(events > 0);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Hub_calls_count_against_the_keys_requests_per_minute()
    {
        var data = Directory.CreateTempSubdirectory("llmserver-sessions-");
        try
        {
            await using var server = await TestServer.StartAsync(extraArgs:
            [
                $"--Auth:ApiKeys:0={AuthTests.KeyA}", "--Limits:RequestsPerMinute=5", $"--Sessions:Database={Path.Combine(data.FullName, "sessions.db")}",
            ]);
            await using var hub = Connect(server, AuthTests.KeyA);
            await hub.StartAsync();

            // The bucket holds 5 calls (the connection's own requests take some) and gains one every 12 s: 20 calls
            // cannot all pass unless hub calls go uncounted.
            HubException? refused = null;
            for (var call = 0; call < 20 && refused is null; call++)
            {
                try
                {
                    await hub.InvokeAsync<JsonElement>("ListSessions");
                }
                catch (HubException ex)
                {
                    refused = ex;
                }
            }

            Assert.NotNull(refused);
            Assert.Matches("rate_limit_exceeded: Rate limit reached for this API key. Retry after [0-9]+ s.$", refused.Message);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    private static HubConnection Connect(TestServer server, string? key) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(server.BaseAddress, "/hubs/chat"), options => options.AccessTokenProvider = () => Task.FromResult(key))
            .Build();
}
