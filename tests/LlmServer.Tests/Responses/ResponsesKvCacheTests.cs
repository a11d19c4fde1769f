using System.Net;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.KvCache;
using LlmServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Responses;

/// <summary>A chain's KV state saved to disk lives no longer than the stored responses that can continue it.</summary>
public sealed class ResponsesKvCacheTests : IDisposable
{
    private readonly string _kvDirectory = Directory.CreateTempSubdirectory("llmserver-responses-kv-").FullName;

    [Fact]
    public async Task A_deleted_response_takes_its_saved_kv_along_and_no_chain_is_saved_at_shutdown()
    {
        var server = await TestServer.StartAsync(extraArgs: ["--Scheduler:Slots=1", $"--Sessions:KvCacheDirectory={_kvDirectory}"]);
        var engine = server.Services.GetRequiredService<LlmEngine>();
        try
        {
            var cache = engine.DiskCache;
            Assert.NotNull(cache);
            var first = await CreateAsync(server, "Once upon a time there was a little girl named Lily.");

            // The only slot goes to the second chain: the first one's KV is written to disk.
            await CreateAsync(server, "The cat sat on the mat.");
            await UntilAsync(cache, () => SavedStates().Length == 1, "the first chain's KV state was never written");

            using var deleted = await server.Client.DeleteAsync(new Uri("/v1/responses/" + first, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
            await UntilAsync(cache, () => SavedStates().Length == 0, "the deleted response's KV state is still on disk");
        }
        finally
        {
            await server.DisposeAsync();
        }

        // The second chain was resident: the stored responses die with the process, so its KV is not saved.
        Assert.Empty(SavedStates());

        // The stopped scheduler disposed the cache: the engine no longer hands it out.
        Assert.Null(engine.DiskCache);
    }

    public void Dispose() => Directory.Delete(_kvDirectory, recursive: true);

    private string[] SavedStates() => Directory.GetFiles(_kvDirectory, "*.kv");

    private static async Task<string> CreateAsync(TestServer server, string input)
    {
        var (status, json, _) = await PostAsync(server.Client, "/v1/responses", $$"""{"input":"{{input}}","max_output_tokens":8,"temperature":0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        return json.GetProperty("id").GetString()!;
    }

    /// <summary>
    /// Waits for the disk writer's (or the scheduler's) work to show in the folder, woken by each change the cache
    /// makes there; the guard only turns a hang into a failure that says what never happened.
    /// </summary>
    private static async Task UntilAsync(DiskKvCache cache, Func<bool> condition, string failure)
    {
        using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        while (true)
        {
            var change = cache.NextChange;
            if (condition())
            {
                return;
            }

            try
            {
                await change.WaitAsync(hang.Token);
            }
            catch (OperationCanceledException) when (hang.IsCancellationRequested)
            {
                Assert.Fail(failure);
            }
        }
    }
}
