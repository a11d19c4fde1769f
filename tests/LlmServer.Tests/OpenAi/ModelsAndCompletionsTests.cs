using System.Net;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary><c>/v1/models</c>, <c>/tokenize</c>, <c>/detokenize</c> and the legacy <c>/v1/completions</c>.</summary>
public sealed class ModelsAndCompletionsTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private const string CompletionsPath = "/v1/completions";

    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task Models_lists_the_loaded_model_with_its_context_length()
    {
        var list = JsonDocument.Parse(await _client.GetStringAsync("/v1/models")).RootElement;
        Assert.Equal("list", list.GetProperty("object").GetString());
        var model = Assert.Single(list.GetProperty("data").EnumerateArray());
        Assert.Equal("stories260K", model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.True(model.GetProperty("created").GetInt64() > 0);
        Assert.False(string.IsNullOrEmpty(model.GetProperty("owned_by").GetString()));

        // The test server splits 2048 KV tokens over 4 slots.
        Assert.Equal(512, model.GetProperty("context_length").GetInt32());
        Assert.Equal(512, model.GetProperty("meta").GetProperty("vocab_size").GetInt32());

        var single = JsonDocument.Parse(await _client.GetStringAsync("/v1/models/stories260K")).RootElement;
        Assert.Equal("stories260K", single.GetProperty("id").GetString());
        Assert.Equal(512, single.GetProperty("context_length").GetInt32());
    }

    [Fact]
    public async Task Tokenize_and_detokenize_round_trip()
    {
        var (status, body, _) = await PostAsync(_client, "/tokenize", """{"content":"Once upon a time"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var tokens = body.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToList();
        Assert.NotEmpty(tokens);

        (status, body, _) = await PostAsync(_client, "/detokenize", JsonSerializer.Serialize(new { tokens }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Once upon a time", body.GetProperty("content").GetString()!.TrimStart());

        (status, body, _) = await PostAsync(_client, "/tokenize", """{"content":"Once upon a time","with_pieces":true}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var pieces = body.GetProperty("tokens").EnumerateArray().ToList();
        Assert.Equal(tokens, pieces.Select(p => p.GetProperty("id").GetInt32()));
        Assert.Equal("Once upon a time", string.Concat(pieces.Select(p => p.GetProperty("piece").GetString())).TrimStart());
    }

    [Fact]
    public async Task Control_tokens_are_their_text_in_pieces_and_detokenized_as_llama_server_renders_them()
    {
        var (status, body, _) = await PostAsync(_client, "/tokenize", """{"content":"Once","add_special":true,"with_pieces":true}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var pieces = body.GetProperty("tokens").EnumerateArray().ToList();
        Assert.Equal("<s>", pieces[0].GetProperty("piece").GetString());

        var tokens = pieces.Select(p => p.GetProperty("id").GetInt32()).ToList();
        (status, body, _) = await PostAsync(_client, "/detokenize", JsonSerializer.Serialize(new { tokens }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("<s> Once", body.GetProperty("content").GetString());
    }

    [Fact]
    public async Task Completion_returns_text_finish_reason_and_usage()
    {
        var (status, body, _) = await PostAsync(_client, CompletionsPath, """{"model":"stories260K","prompt":"Once upon a time","max_tokens":5,"temperature":0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("cmpl-", body.GetProperty("id").GetString());
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.False(string.IsNullOrEmpty(choice.GetProperty("text").GetString()));
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(5, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Completion_with_an_array_of_prompts_and_n_2_numbers_choices_per_prompt()
    {
        var (status, body, _) = await PostAsync(_client, CompletionsPath, """
            {"prompt":["Once upon a time","The cat"],"max_tokens":3,"n":2,"echo":true,"temperature":1,"seed":5}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var echoed = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2, 3], echoed.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(echoed.Take(2), c => Assert.StartsWith("Once upon a time", c.GetProperty("text").GetString()));
        Assert.All(echoed.Skip(2), c => Assert.StartsWith("The cat", c.GetProperty("text").GetString()));

        (status, body, _) = await PostAsync(_client, CompletionsPath, """
            {"prompt":["Once upon a time","The cat"],"max_tokens":3,"n":2,"logprobs":2,"temperature":1,"seed":5}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2, 3], choices.Select(c => c.GetProperty("index").GetInt32()));
        foreach (var choice in choices)
        {
            var logprobs = choice.GetProperty("logprobs");
            Assert.Equal(3, logprobs.GetProperty("tokens").GetArrayLength());
            Assert.Equal(3, logprobs.GetProperty("token_logprobs").GetArrayLength());
            Assert.Equal(3, logprobs.GetProperty("text_offset").GetArrayLength());
            Assert.All(logprobs.GetProperty("top_logprobs").EnumerateArray(), t => Assert.InRange(t.EnumerateObject().Count(), 1, 2));
        }

        Assert.Equal(12, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    /// <summary>
    /// OpenAI's legacy completions would add the prompt tokens' log-probabilities (the first one null) with
    /// <c>echo</c> and <c>logprobs</c>; llama.cpp's server refuses <c>echo</c> at all ("Only no echo is supported",
    /// <c>oaicompat_completion_params_parse</c>). This server refuses the pair with a 400 on <c>echo</c>, streamed or not.
    /// </summary>
    [Theory]
    [InlineData("""{"prompt":"Once upon a time","max_tokens":2,"echo":true,"logprobs":0}""")]
    [InlineData("""{"prompt":["Once upon a time","The cat"],"max_tokens":2,"echo":true,"logprobs":3,"stream":true}""")]
    public async Task Echo_with_logprobs_is_refused_as_an_invalid_echo(string json)
    {
        var (status, body, _) = await PostAsync(_client, CompletionsPath, json);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("echo", error.GetProperty("param").GetString());
        Assert.Contains("'logprobs'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Streamed_completion_sends_text_chunks_finish_usage_and_done()
    {
        using var response = await PostStreamAsync(_client, CompletionsPath, """
            {"prompt":["Once upon a time","The cat"],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var transcript = await ReadAllEventsAsync(response);
        Assert.Equal("[DONE]", transcript.Events[^1].Data);
        var chunks = transcript.Chunks;
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        var usage = chunks[^1];
        Assert.Empty(usage.GetProperty("choices").EnumerateArray());
        Assert.Equal(6, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var finishes = chunks.SkipLast(1)
            .Select(c => c.GetProperty("choices")[0])
            .Where(c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            .Select(c => c.GetProperty("index").GetInt32())
            .Order();
        Assert.Equal([0, 1], finishes);
        Assert.All(chunks.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
    }

    [Fact]
    public async Task At_a_stop_sequence_the_logprobs_cover_the_answers_text_and_no_more()
    {
        const string Request = """{"prompt":"Once upon a time, there was a little","max_tokens":40,"temperature":0,"logprobs":1""";
        var (_, full, _) = await PostAsync(_client, CompletionsPath, Request + "}");
        var tokens = full.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
        var text = string.Concat(tokens);

        // A stop sequence that begins inside a token: the rest of that token and the next, first found where they stand.
        var at = Enumerable.Range(2, tokens.Count - 3).First(k =>
            tokens[k].Length >= 2 && tokens[k][1..].Trim().Length > 0
            && text.IndexOf(tokens[k][1..] + tokens[k + 1], StringComparison.Ordinal) == string.Concat(tokens.Take(k)).Length + 1);
        var stop = tokens[at][1..] + tokens[at + 1];

        var (status, stopped, _) = await PostAsync(_client, CompletionsPath, Request + $",\"stop\":[{JsonSerializer.Serialize(stop)}]}}");
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = stopped.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var before = string.Concat(tokens.Take(at));
        Assert.Equal(before + tokens[at][0], choice.GetProperty("text").GetString());

        // The token that writes the start of the stop sequence goes with it: the log-probabilities end at the tokens
        // wholly in the answer.
        var logprobs = choice.GetProperty("logprobs");
        Assert.Equal(before, string.Concat(logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString())));
        Assert.Equal(at, logprobs.GetProperty("token_logprobs").GetArrayLength());
    }
}
