using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LlmServer.Batches;
using LlmServer.Operations.Lifecycle;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Operations;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Batch;
using OpenAI.Files;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

#pragma warning disable OPENAI001 // The SDK marks the Batch client experimental.

namespace LlmServer.Tests.Batches;

/// <summary>Files and batches through the official SDK and raw HTTP, each server on its own database.</summary>
public sealed class BatchApiTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("llmserver-batches-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Official_sdk_uploads_a_file_and_a_50_request_batch_completes()
    {
        await using var server = await StartAsync();
        var options = new OpenAI.OpenAIClientOptions { Endpoint = new Uri(server.BaseAddress, "/v1") };
        var files = new OpenAIFileClient(new ApiKeyCredential("any-key"), options);
        var lines = Enumerable.Range(0, 50).Select(i => ChatLine($"req-{i}", i == 7 ? """ "temperature": 9,""" : string.Empty));
        var jsonl = string.Join("\n", lines) + "\n";

        OpenAIFile uploaded = await files.UploadFileAsync(BinaryData.FromString(jsonl), "requests.jsonl", FileUploadPurpose.Batch);
        Assert.StartsWith("file-", uploaded.Id);
        Assert.Equal(Encoding.UTF8.GetByteCount(jsonl), uploaded.SizeInBytes);
        Assert.Equal("requests.jsonl", uploaded.Filename);
        OpenAIFile fetched = await files.GetFileAsync(uploaded.Id);
        Assert.Equal(uploaded.Id, fetched.Id);
        BinaryData content = await files.DownloadFileAsync(uploaded.Id);
        Assert.Equal(jsonl, content.ToString());

        var batches = new BatchClient(new ApiKeyCredential("any-key"), new BatchClientOptions { Endpoint = options.Endpoint });
        var create = await batches.CreateBatchAsync(
            BinaryContent.Create(BinaryData.FromString($$$"""{"input_file_id":"{{{uploaded.Id}}}","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"job":"nightly"}}""")),
            waitUntilCompleted: false);
        var batchId = create.BatchId;
        var batch = await WaitForStatusAsync(server, batchId, "completed");

        Assert.Equal("nightly", batch.GetProperty("metadata").GetProperty("job").GetString());
        var counts = batch.GetProperty("request_counts");
        Assert.Equal(50, counts.GetProperty("total").GetInt32());
        Assert.Equal(49, counts.GetProperty("completed").GetInt32());
        Assert.Equal(1, counts.GetProperty("failed").GetInt32());
        foreach (var stamp in new[] { "in_progress_at", "finalizing_at", "completed_at" })
        {
            Assert.True(batch.GetProperty(stamp).GetInt64() > 0, stamp);
        }

        var output = ReadLines((await files.DownloadFileAsync(batch.GetProperty("output_file_id").GetString()!)).Value.ToString());
        Assert.Equal(49, output.Count);
        Assert.Equal(Enumerable.Range(0, 50).Where(i => i != 7).Select(i => $"req-{i}"), output.Select(l => l.GetProperty("custom_id").GetString()));
        Assert.All(output, line =>
        {
            Assert.StartsWith("batch_req_", line.GetProperty("id").GetString());
            Assert.Equal(JsonValueKind.Null, line.GetProperty("error").ValueKind);
            var response = line.GetProperty("response");
            Assert.Equal(200, response.GetProperty("status_code").GetInt32());
            Assert.False(string.IsNullOrEmpty(response.GetProperty("request_id").GetString()));
            Assert.Equal("chat.completion", response.GetProperty("body").GetProperty("object").GetString());
        });

        var errors = ReadLines((await files.DownloadFileAsync(batch.GetProperty("error_file_id").GetString()!)).Value.ToString());
        var failed = Assert.Single(errors);
        Assert.Equal("req-7", failed.GetProperty("custom_id").GetString());
        Assert.Equal(400, failed.GetProperty("response").GetProperty("status_code").GetInt32());
        Assert.Equal("temperature", failed.GetProperty("response").GetProperty("body").GetProperty("error").GetProperty("param").GetString());

        // The batch lane's metrics: every line done, by outcome; none waiting or running.
        var metrics = await server.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal(49, PrometheusText.Sum(metrics, "llmserver_batch_requests_done_total", "outcome=\"completed\""));
        Assert.Equal(1, PrometheusText.Sum(metrics, "llmserver_batch_requests_done_total", "outcome=\"failed\""));
        Assert.True(PrometheusText.Has(metrics, "llmserver_batch_requests_waiting"), metrics);
        Assert.Equal(0, PrometheusText.Sum(metrics, "llmserver_batch_requests_waiting"));
        Assert.Equal(0, PrometheusText.Sum(metrics, "llmserver_batch_requests_running"));

        var listed = new List<BatchJob>();
        await foreach (var job in batches.GetBatchesAsync(new BatchCollectionOptions()))
        {
            listed.Add(job);
        }

        Assert.Contains(listed, j => j.Id == batchId);
        FileDeletionResult deleted = await files.DeleteFileAsync(uploaded.Id);
        Assert.True(deleted.Deleted);
    }

    [Fact]
    public async Task Embedding_and_completion_batches_run_and_bad_files_are_refused()
    {
        await using var server = await StartAsync();
        var embeddingsFile = await UploadAsync(server, """
            {"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"input":"Once upon a time"}}
            {"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"input":["The cat","The dog"],"encoding_format":"base64"}}
            """);
        var batch = await WaitForStatusAsync(server, await CreateAsync(server, embeddingsFile, "/v1/embeddings"), "completed");
        var output = await DownloadLinesAsync(server, batch.GetProperty("output_file_id").GetString()!);
        Assert.Equal(2, output[1].GetProperty("response").GetProperty("body").GetProperty("data").GetArrayLength());

        var completionsFile = await UploadAsync(server, """{"custom_id":"c","method":"POST","url":"/v1/completions","body":{"prompt":"Once upon a time","max_tokens":3}}""");
        batch = await WaitForStatusAsync(server, await CreateAsync(server, completionsFile, "/v1/completions"), "completed");
        var completion = Assert.Single(await DownloadLinesAsync(server, batch.GetProperty("output_file_id").GetString()!));
        Assert.Equal("text_completion", completion.GetProperty("response").GetProperty("body").GetProperty("object").GetString());

        // A file whose lines name another endpoint than the batch fails validation, with the line named.
        batch = await WaitForStatusAsync(server, await CreateAsync(server, completionsFile, "/v1/embeddings"), "failed");
        Assert.Equal(1, batch.GetProperty("errors").GetProperty("data")[0].GetProperty("line").GetInt32());

        foreach (var bad in new[]
        {
            """{"custom_id":"x","method":"GET","url":"/v1/embeddings","body":{}}""",
            """{"custom_id":"x","method":"POST","url":"/v1/responses","body":{}}""",
            """{"custom_id":"x","method":"POST","url":"/v1/completions","body":{"prompt":"a","stream":true}}""",
            "{\"custom_id\":\"x\",\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":{}}\n{\"custom_id\":\"x\",\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":{}}",
            "not json",
        })
        {
            using var refused = await server.Client.PostAsync("/v1/files", Multipart(bad, "batch"));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            AssertOpenAiError(JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement, "invalid_request_error", "file");
        }

        using var wrongPurpose = await server.Client.PostAsync("/v1/files", Multipart("{}", "fine-tune"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongPurpose.StatusCode);

        var (status, body, _) = await PostAsync(server.Client, "/v1/batches", """{"input_file_id":"file-nope","endpoint":"/v1/completions","completion_window":"24h"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", "input_file_id");

        // Pagination: newest first, 'after' continues.
        var (_, page, _) = await GetAsync(server, "/v1/batches?limit=2");
        Assert.Equal(2, page.GetProperty("data").GetArrayLength());
        Assert.True(page.GetProperty("has_more").GetBoolean());
        var (_, next, _) = await GetAsync(server, $"/v1/batches?limit=2&after={page.GetProperty("last_id").GetString()}");
        Assert.Equal(1, next.GetProperty("data").GetArrayLength());
        Assert.False(next.GetProperty("has_more").GetBoolean());
    }

    [Fact]
    public async Task Cancel_stops_the_batch_and_keeps_what_finished()
    {
        // The gate holds every decode until the cancel is made: no line can finish first, however fast the model is.
        var gate = new DecodeGate();
        await using var server = await StartAsync(gate: gate);
        gate.Close();
        try
        {
            var lines = Enumerable.Range(0, 200).Select(i => ChatLine($"long-{i}", """ "ignore_eos": true,""", maxTokens: 400));
            var file = await UploadAsync(server, string.Join("\n", lines));
            var id = await CreateAsync(server, file, "/v1/chat/completions");
            await WaitForStatusAsync(server, id, "in_progress");

            var (status, cancelling, _) = await PostAsync(server.Client, $"/v1/batches/{id}/cancel", "{}");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Contains(cancelling.GetProperty("status").GetString(), new[] { "cancelling", "cancelled" });
            gate.Open();

            var cancelled = await WaitForStatusAsync(server, id, "cancelled");
            Assert.True(cancelled.GetProperty("cancelled_at").GetInt64() > 0);
            Assert.True(cancelled.GetProperty("request_counts").GetProperty("completed").GetInt32() < 200);
        }
        finally
        {
            gate.Open();
        }
    }

    [Fact]
    public async Task Deleting_the_input_file_mid_batch_changes_nothing_and_cancel_keeps_the_finished_lines()
    {
        await using var server = await StartAsync();
        var lines = Enumerable.Range(0, 200).Select(i => ChatLine($"del-{i}", """ "ignore_eos": true,""", maxTokens: 400));
        var file = await UploadAsync(server, string.Join("\n", lines));
        var id = await CreateAsync(server, file, "/v1/chat/completions");
        await WaitForCompletedLinesAsync(server, id, atLeast: 1);

        using (var deleted = await server.Client.DeleteAsync($"/v1/files/{file}"))
        {
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        }

        // The batch runs on without its file: more lines finish after the deletion.
        var before = (await GetAsync(server, $"/v1/batches/{id}")).Body.GetProperty("request_counts").GetProperty("completed").GetInt32();
        await WaitForCompletedLinesAsync(server, id, atLeast: before + 1);

        var (status, _, _) = await PostAsync(server.Client, $"/v1/batches/{id}/cancel", "{}");
        Assert.Equal(HttpStatusCode.OK, status);
        var cancelled = await WaitForStatusAsync(server, id, "cancelled");
        Assert.Equal(JsonValueKind.Null, cancelled.GetProperty("errors").ValueKind);
        var completed = cancelled.GetProperty("request_counts").GetProperty("completed").GetInt32();
        Assert.InRange(completed, before + 1, 199);
        var output = await DownloadLinesAsync(server, cancelled.GetProperty("output_file_id").GetString()!);
        Assert.Equal(completed, output.Count);
        Assert.All(output, line => Assert.StartsWith("del-", line.GetProperty("custom_id").GetString()));
    }

    [Fact]
    public async Task A_restart_mid_batch_keeps_done_lines_and_runs_the_rest_without_its_input_file()
    {
        var database = Path.Combine(_folder, "restart.db");
        var lines = Enumerable.Range(0, 50).Select(i => ChatLine($"r-{i}", """ "ignore_eos": true,""", maxTokens: 48));
        string id;
        int doneBeforeStop;

        // The first server's decodes stop after enough steps for a few lines (48 each, 4 at a time), far too few for
        // all 50: the batch is mid-way when the server stops, however fast the model is. Its drain closes admission
        // before the gate opens, so only the lines already admitted can still finish there.
        var gate = new DecodeGate();
        await using (var first = await StartAsync(database, gate: gate))
        {
            gate.CloseAfter(150);
            try
            {
                var file = await UploadAsync(first, string.Join("\n", lines));
                id = await CreateAsync(first, file, "/v1/chat/completions");
                doneBeforeStop = await WaitForCompletedLinesAsync(first, id, atLeast: 2);
                using var deleted = await first.Client.DeleteAsync($"/v1/files/{file}");
                Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
                _ = first.Services.GetRequiredService<GracefulShutdown>().BeginDrain();
            }
            finally
            {
                gate.Open();
            }
        }

        await using var second = await StartAsync(database);
        var batch = await WaitForStatusAsync(second, id, "completed");
        Assert.Equal(50, batch.GetProperty("request_counts").GetProperty("completed").GetInt32());
        var runner = second.Services.GetRequiredService<BatchRunner>();
        Assert.InRange(runner.LinesRun, 1, 50 - doneBeforeStop);

        var output = await DownloadLinesAsync(second, batch.GetProperty("output_file_id").GetString()!);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"r-{i}"), output.Select(l => l.GetProperty("custom_id").GetString()));
    }

    [Fact]
    public async Task A_jsonl_file_starting_with_a_utf8_byte_order_mark_is_accepted()
    {
        await using var server = await StartAsync();
        var content = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes(ChatLine("bom-0", string.Empty) + "\r\n" + ChatLine("bom-1", string.Empty) + "\r\n")).ToArray();
        using var upload = new MultipartFormDataContent
        {
            { new StringContent("batch"), "purpose" },
            { new ByteArrayContent(content), "file", "windows.jsonl" },
        };
        using var response = await server.Client.PostAsync("/v1/files", upload);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());

        var batch = await WaitForStatusAsync(server, await CreateAsync(server, body.GetProperty("id").GetString()!, "/v1/chat/completions"), "completed");
        var output = await DownloadLinesAsync(server, batch.GetProperty("output_file_id").GetString()!);
        Assert.Equal(["bom-0", "bom-1"], output.Select(l => l.GetProperty("custom_id").GetString()));
    }

    [Fact]
    public async Task Files_and_batches_belong_to_their_api_key()
    {
        const string KeyA = "batch-owner-key-a-0123456789";
        const string KeyB = "batch-owner-key-b-0123456789";
        await using var server = await StartAsync(extra: [$"--Auth:ApiKeys:0={KeyA}", $"--Auth:ApiKeys:1={KeyB}"]);
        server.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", KeyA);
        var file = await UploadAsync(server, ChatLine("only", string.Empty));
        var id = await CreateAsync(server, file, "/v1/chat/completions");

        using var other = new HttpClient { BaseAddress = server.BaseAddress };
        other.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", KeyB);
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/batches/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/v1/files/{file}/content")).StatusCode);
        var (status, _, _) = await PostAsync(other, "/v1/batches", $$"""{"input_file_id":"{{file}}","endpoint":"/v1/chat/completions","completion_window":"24h"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        await WaitForStatusAsync(server, id, "completed");
    }

    private static string ChatLine(string customId, string extra, int maxTokens = 4) =>
        $$$"""{"custom_id":"{{{customId}}}","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"Once upon a time"}],{{{extra}}} "max_tokens":{{{maxTokens}}}}}""";

    private Task<TestServer> StartAsync(string? database = null, IEnumerable<string>? extra = null, DecodeGate? gate = null) => TestServer.StartAsync(
        extraArgs: [$"--Sessions:Database={database ?? Path.Combine(_folder, Guid.NewGuid().ToString("N") + ".db")}", .. extra ?? []],
        configureServices: gate is null ? null : gate.Install);

    private static MultipartFormDataContent Multipart(string jsonl, string purpose) => new()
    {
        { new StringContent(purpose), "purpose" },
        { new ByteArrayContent(Encoding.UTF8.GetBytes(jsonl)), "file", "batch.jsonl" },
    };

    private static async Task<string> UploadAsync(TestServer server, string jsonl)
    {
        using var response = await server.Client.PostAsync("/v1/files", Multipart(jsonl, "batch"));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());
        return body.GetProperty("id").GetString()!;
    }

    private static async Task<string> CreateAsync(TestServer server, string fileId, string endpoint)
    {
        var (status, body, _) = await PostAsync(server.Client, "/v1/batches", $$"""{"input_file_id":"{{fileId}}","endpoint":"{{endpoint}}","completion_window":"24h"}""");
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        Assert.Equal("validating", body.GetProperty("status").GetString());
        return body.GetProperty("id").GetString()!;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> GetAsync(TestServer server, string path)
    {
        var response = await server.Client.GetAsync(path);
        return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone(), response);
    }

    /// <summary>Reads the batch until it reaches <paramref name="status"/> (the event waited for), failing on another final status.</summary>
    private static async Task<JsonElement> WaitForStatusAsync(TestServer server, string id, string status)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        while (true)
        {
            var (_, batch, _) = await GetAsync(server, $"/v1/batches/{id}");
            var current = batch.GetProperty("status").GetString();
            if (current == status)
            {
                return batch;
            }

            Assert.False(current is "completed" or "failed" or "cancelled" or "expired", $"batch ended {current}, expected {status}: {batch}");
            // The Batches API, like OpenAI's, is read by polling: a batch pushes no change.
            await Task.Delay(50, deadline.Token);
        }
    }

    private static async Task<int> WaitForCompletedLinesAsync(TestServer server, string id, int atLeast)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        while (true)
        {
            var (_, batch, _) = await GetAsync(server, $"/v1/batches/{id}");
            var completed = batch.GetProperty("request_counts").GetProperty("completed").GetInt32();
            if (completed >= atLeast)
            {
                Assert.Equal("in_progress", batch.GetProperty("status").GetString());
                return completed;
            }

            // The Batches API, like OpenAI's, is read by polling: a batch pushes no change.
            await Task.Delay(50, deadline.Token);
        }
    }

    private static async Task<List<JsonElement>> DownloadLinesAsync(TestServer server, string fileId)
    {
        using var response = await server.Client.GetAsync($"/v1/files/{fileId}/content");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return ReadLines(await response.Content.ReadAsStringAsync());
    }

    private static List<JsonElement> ReadLines(string jsonl) =>
        jsonl.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
}
