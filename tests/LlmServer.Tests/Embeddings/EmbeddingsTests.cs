using System.ClientModel;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using OpenAI.Embeddings;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.Embeddings;

/// <summary><c>/v1/embeddings</c> on the real stories260K model: shapes, norms, encodings, batching, the official SDK.</summary>
public sealed class EmbeddingsTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private const string Path = "/v1/embeddings";

    private readonly TestServer _server = fixture.Server;

    [Fact]
    public async Task Vectors_have_the_model_size_unit_norm_and_repeat_for_identical_input()
    {
        var (status, body, response) = await PostAsync(_server.Client, Path, """
            {"model":"stories260K","input":["Once upon a time","The cat sat.","Once upon a time"]}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        AssertJsonContentType(response);
        Assert.Equal("list", body.GetProperty("object").GetString());
        Assert.Equal("stories260K", body.GetProperty("model").GetString());
        var data = body.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(3, data.Count);
        var vectors = data.Select((d, i) =>
        {
            Assert.Equal("embedding", d.GetProperty("object").GetString());
            Assert.Equal(i, d.GetProperty("index").GetInt32());
            return d.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        }).ToList();

        Assert.All(vectors, v => Assert.Equal(vectors[0].Length, v.Length));
        Assert.True(vectors[0].Length > 0);
        Assert.All(vectors, v => Assert.Equal(1.0, Norm(v), 4));
        AssertSameVector(vectors[0], vectors[2]);
        Assert.True(Cosine(vectors[0], vectors[1]) < 0.999, "different texts give different vectors");

        var usage = body.GetProperty("usage");
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 0);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Base64_decodes_to_the_same_floats()
    {
        var (_, floats, _) = await PostAsync(_server.Client, Path, """{"input":"Once upon a time","encoding_format":"float"}""");
        var (status, encoded, _) = await PostAsync(_server.Client, Path, """{"input":"Once upon a time","encoding_format":"base64"}""");

        Assert.Equal(HttpStatusCode.OK, status);
        var expected = floats.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        var decoded = MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(encoded.GetProperty("data")[0].GetProperty("embedding").GetString()!)).ToArray();
        Assert.Equal(expected.Length, decoded.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], decoded[i], 5);
        }
    }

    [Fact]
    public async Task Token_arrays_embed_like_their_text()
    {
        var (_, tokenized, _) = await PostAsync(_server.Client, "/tokenize", """{"content":"Once upon a time","add_special":true}""");
        var tokens = tokenized.GetProperty("tokens").GetRawText();

        var (status, body, _) = await PostAsync(_server.Client, Path, $$"""{"input":[{{tokens}}, {{tokens}}]}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, body.GetProperty("data").GetArrayLength());

        var (_, single, _) = await PostAsync(_server.Client, Path, $$"""{"input":{{tokens}}}""");
        Assert.Equal(1, single.GetProperty("data").GetArrayLength());

        var (_, text, _) = await PostAsync(_server.Client, Path, """{"input":"Once upon a time"}""");
        var fromTokens = single.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        var fromText = text.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        AssertSameVector(fromText, fromTokens);
    }

    [Fact]
    public async Task Concurrent_requests_are_batched_and_each_gets_its_own_vectors()
    {
        var (_, alone, _) = await PostAsync(_server.Client, Path, """{"input":"The little dog ran home."}""");
        var expected = alone.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();

        var requests = Enumerable.Range(0, 12).Select(i => PostAsync(_server.Client, Path, i % 2 == 0
            ? """{"input":["The little dog ran home.","Once upon a time"]}"""
            : """{"input":"The little dog ran home."}"""));
        var answers = await Task.WhenAll(requests);

        foreach (var (status, body, _) in answers)
        {
            Assert.Equal(HttpStatusCode.OK, status);
            var vector = body.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            AssertSameVector(expected, vector);
        }
    }

    [Theory]
    [InlineData("""{}""", "input")]
    [InlineData("""{"input":[]}""", "input")]
    [InlineData("""{"input":""}""", "input[0]")]
    [InlineData("""{"input":"Hi","encoding_format":"int8"}""", "encoding_format")]
    [InlineData("""{"input":"Hi","dimensions":3}""", "dimensions")]
    [InlineData("""{"input":"Hi","dimensions":100000}""", "dimensions")]
    [InlineData("""{"input":[[1,2],[99999]]}""", "input[1]")]
    [InlineData("""{"input":[1,"a"]}""", "input")]
    public async Task Bad_request_names_the_field(string json, string param)
    {
        var (status, body, _) = await PostAsync(_server.Client, Path, json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", param);
    }

    [Fact]
    public async Task An_inputs_refusal_names_it_once()
    {
        var (_, badToken, _) = await PostAsync(_server.Client, Path, """{"input":[[1,2],[99999]]}""");
        var huge = string.Concat(Enumerable.Repeat("Tom and Lily played in the park. ", 20_000));
        var (_, tooLong, _) = await PostAsync(_server.Client, Path, JsonSerializer.Serialize(new { input = new[] { "Hi", huge } }));

        Assert.Matches(@"^input\[1\]: holds token 99999, which is not in the embedding model's vocabulary \(0 to \d+\)\.$", badToken.GetProperty("error").GetProperty("message").GetString());
        Assert.Matches(@"^input\[1\]: has at least \d+ tokens; the embedding context holds at most \d+ \(Embeddings:ContextSize\)\.$", tooLong.GetProperty("error").GetProperty("message").GetString());
        AssertOpenAiError(tooLong, "invalid_request_error", "input[1]");
    }

    [Fact]
    public async Task Official_sdk_embedding_client_reads_vectors_and_usage()
    {
        var client = new EmbeddingClient("stories260K", new ApiKeyCredential("any-key"), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });

        // The SDK asks for base64 by default and decodes it.
        OpenAIEmbeddingCollection embeddings = await client.GenerateEmbeddingsAsync(["Once upon a time", "The cat sat."]);
        Assert.Equal(2, embeddings.Count);
        Assert.Equal("stories260K", embeddings.Model);
        var first = embeddings[0].ToFloats().ToArray();
        Assert.Equal(1.0, Norm(first), 4);
        Assert.True(embeddings.Usage.InputTokenCount > 0);

        OpenAIEmbedding single = await client.GenerateEmbeddingAsync("Once upon a time");
        AssertSameVector(first, single.ToFloats().ToArray());

        var dimensions = first.Length;
        OpenAIEmbedding sized = await client.GenerateEmbeddingAsync("Once upon a time", new EmbeddingGenerationOptions { Dimensions = dimensions });
        Assert.Equal(dimensions, sized.ToFloats().Length);
    }

    private static double Norm(float[] vector) => Math.Sqrt(vector.Sum(v => (double)v * v));

    private static double Cosine(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum() / (Norm(a) * Norm(b));

    /// <summary>
    /// The same input gives the same vector up to float rounding: llama.cpp's kernels sum in an order that depends
    /// on what else shares the decode (about 1e-7 within one batch, up to 1e-4 across batches of other sizes).
    /// </summary>
    private static void AssertSameVector(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        Assert.True(Cosine(expected, actual) > 0.99999, $"cosine {Cosine(expected, actual)}");
        Assert.All(expected.Zip(actual), pair => Assert.True(Math.Abs(pair.First - pair.Second) < 1e-3f, $"{pair.First} vs {pair.Second}"));
    }
}

/// <summary>The embedding context stands apart from generation: its own model when configured, and no KV slot.</summary>
public sealed class EmbeddingContextTests
{
    [Fact]
    public async Task Embeddings_answer_while_every_generation_slot_is_busy()
    {
        // The gate holds the one slot's generation (and with it the generation context's decodes) until the
        // embedding is answered: unheld, it could have ended first, and the slot would not be busy.
        var gate = new DecodeGate();
        await using var server = await TestServer.StartAsync(extraArgs: ["--Scheduler:Slots=1", "--Scheduler:ContextSize=1024", "--Scheduler:MaxQueue=0"], configureServices: gate.Install);
        using var cancel = new CancellationTokenSource();
        gate.CloseAfter(4);
        try
        {
            using var running = await PostStreamAsync(server.Client, ChatPath, """
                {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":900,"ignore_eos":true,"temperature":0,"stream":true}
                """, cancel.Token);
            using var reader = new StreamReader(await running.Content.ReadAsStreamAsync(cancel.Token));
            await foreach (var item in ReadEventsAsync(reader, cancel.Token))
            {
                if (!item.IsComment && item.Json.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var content) && content.GetString()!.Length > 0)
                {
                    break;
                }
            }

            await gate.Blocked;
            var (status, body, _) = await PostAsync(server.Client, "/v1/embeddings", """{"input":"Once upon a time"}""");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(1, body.GetProperty("data").GetArrayLength());
            await cancel.CancelAsync();
        }
        finally
        {
            gate.Open();
        }
    }

    [Fact]
    public async Task A_dedicated_embedding_model_is_loaded_from_its_own_path()
    {
        await using var server = await TestServer.StartAsync(extraArgs: [$"--Embeddings:ModelPath={TestModels.TinyRandomLlama2}"]);
        var (status, body, _) = await PostAsync(server.Client, "/v1/embeddings", """{"input":"Hello there"}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(System.IO.Path.GetFileNameWithoutExtension(TestModels.TinyRandomLlama2), body.GetProperty("model").GetString());
        var vector = body.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => (double)v.GetSingle()).ToArray();
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(v => v * v)), 4);

        var (_, served, _) = await PostAsync(server.Client, "/v1/embeddings", """{"model":"stories260K","input":"Hello there"}""");
        Assert.Equal(body.GetProperty("model").GetString(), served.GetProperty("model").GetString());
    }
}
