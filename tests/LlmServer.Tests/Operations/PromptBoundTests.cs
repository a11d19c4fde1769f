using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Sessions;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.OpenAi;
using LlmServer.Tests.Sessions;

namespace LlmServer.Tests.Operations;

/// <summary>
/// A prompt whose fewest possible tokens (UTF-8 bytes / the vocabulary's longest piece) already exceed the context is
/// refused before the tokenizer runs; the tokenizer's calls are counted through the engine's backend seam.
/// </summary>
public sealed class PromptBoundTests
{
    private const string Sentence = "Tom and Lily played in the park with a big red ball. ";

    [Theory]
    [InlineData("stories260K.gguf")]
    [InlineData("llama-2-tiny-random.gguf")]
    [InlineData("ggml-vocab-phi-3.gguf")]
    public void The_bound_never_exceeds_the_real_token_count(string model)
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Find(model));
        var vocabulary = new LlamaVocabulary(weights);
        Assert.True(vocabulary.Bound.LongestTokenBytes >= 4);

        string[] texts =
        [
            Sentence, "          many     spaces   ", "ééééé ñ ü 東京 😀😀😀", "<s></s><|im_start|>user<|end|><|assistant|>",
            "1234567890 3.14159", string.Concat(Enumerable.Repeat("the ", 500)), "\n\n\t\t\r\n", "a",

            // SentencePiece reads a literal U+2581 (3 bytes) as the space it writes pieces with (1 byte).
            new string('\u2581', 4800), "a\u2581b\u2581\u2581c " + new string('\u2581', 100),

            // Phi-3's special tokens strip the whitespace beside them: it becomes no tokens at all.
            "<|end|>" + new string('\n', 4800), "<|user|>" + new string(' ', 4800) + "hi<|end|>", new string(' ', 4800) + "<|end|>",
        ];
        foreach (var text in texts)
        {
            foreach (var parseSpecial in new[] { false, true })
            {
                var tokens = vocabulary.Tokenize(text, addSpecial: false, parseSpecial).Length;
                Assert.True(vocabulary.Bound.MinimumTokens(text) <= tokens, $"{model}: '{text[..Math.Min(text.Length, 40)]}' ({text.Length} chars) has {tokens} tokens, bound {vocabulary.Bound.MinimumTokens(text)}");
            }
        }
    }

    [Fact]
    public async Task A_prompt_far_past_the_context_is_refused_without_tokenizing_it()
    {
        var calls = new TokenizerCalls();
        await using var server = await TestServer.StartAsync(configureServices: calls.Install);
        var huge = string.Concat(Enumerable.Repeat(Sentence, 100_000)); // 5.3 MB

        foreach (var (path, body) in new[]
        {
            ("/v1/chat/completions", (object)new { messages = new[] { new { role = "user", content = huge } } }),
            ("/v1/completions", new { prompt = huge }),
            ("/v1/responses", new { input = huge }),
            ("/v1/messages", new { max_tokens = 8, messages = new[] { new { role = "user", content = huge } } }),
        })
        {
            using var response = await server.Client.PostAsJsonAsync(path, body);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(HttpStatusCode.BadRequest == response.StatusCode, $"{path}: {(int)response.StatusCode} {text}");
            Assert.Contains("at least", text, StringComparison.Ordinal);
        }

        Assert.Equal(0, calls.Count);

        // The chat completion's refusal in OpenAI's shape, its count a lower bound that says so.
        using var chat = await server.Client.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = huge } } });
        using var error = JsonDocument.Parse(await chat.Content.ReadAsStringAsync());
        OpenAiHttp.AssertOpenAiError(error.RootElement, "invalid_request_error", "messages", "context_length_exceeded");
        Assert.Matches(@"maximum context length is 512 tokens.*your prompt has at least \d+ tokens", error.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(0, calls.Count);

        // A prompt that fits is tokenized through the same seam.
        using var answered = await server.Client.PostAsJsonAsync("/v1/completions", new { prompt = Sentence, max_tokens = 2 });
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.True(calls.Count > 0);
    }

    [Fact]
    public async Task A_text_to_tokenize_or_count_is_counted_in_full_past_the_context_and_Limits_MaxPromptTokens()
    {
        var calls = new TokenizerCalls();
        await using var server = await TestServer.StartAsync(extraArgs: ["--Limits:MaxPromptTokens=4"], configureServices: calls.Install);

        // About 14,000 tokens: its bound alone is past Limits:MaxPromptTokens and the 512-token slot, so generation refuses it untokenized.
        var text = string.Concat(Enumerable.Repeat(Sentence, 1_000));
        var (completionStatus, completion, _) = await OpenAiHttp.PostAsync(server.Client, "/v1/completions", JsonSerializer.Serialize(new { prompt = text }));
        Assert.Equal(HttpStatusCode.BadRequest, completionStatus);
        Assert.Contains("at least", completion.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, calls.Count);

        // /tokenize and count_tokens count it all, as llama-server's /tokenize does: a chunker tokenizes whole documents.
        var (tokenizeStatus, tokenize, _) = await OpenAiHttp.PostAsync(server.Client, "/tokenize", JsonSerializer.Serialize(new { content = text }));
        Assert.Equal(HttpStatusCode.OK, tokenizeStatus);
        var tokens = tokenize.GetProperty("tokens").GetArrayLength();
        Assert.True(tokens > 10 * 512, $"{tokens} tokens");

        using var count = await server.Client.PostAsJsonAsync("/v1/messages/count_tokens", new { messages = new[] { new { role = "user", content = text } } });
        var counted = await count.Content.ReadAsStringAsync();
        Assert.True(HttpStatusCode.OK == count.StatusCode, counted);
        using var input = JsonDocument.Parse(counted);
        Assert.True(input.RootElement.GetProperty("input_tokens").GetInt32() >= tokens, counted);
        Assert.Equal(2, calls.Count);
    }

    [Fact]
    public async Task A_prompt_just_past_the_context_is_tokenized_and_refused_with_its_exact_count()
    {
        var calls = new TokenizerCalls();
        await using var server = await TestServer.StartAsync(configureServices: calls.Install);

        // About 700 tokens: past the 512-token slot, but its bound (bytes / longest piece) is not.
        using var response = await server.Client.PostAsJsonAsync("/v1/completions", new { prompt = string.Concat(Enumerable.Repeat(Sentence, 50)) });
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        OpenAiHttp.AssertOpenAiError(error.RootElement, "invalid_request_error", "prompt", "context_length_exceeded");
        Assert.DoesNotContain("at least", error.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, calls.Count);
    }

    [Fact]
    public async Task A_session_message_far_past_the_context_is_refused_without_tokenizing_it()
    {
        var calls = new TokenizerCalls();
        await using var server = await SessionTestServer.StartAsync(null, calls.Install);
        var client = server.Server.Client;
        using var create = await client.PostAsJsonAsync("/api/sessions", new CreateSessionRequest("bound"));
        var session = (await create.Content.ReadFromJsonAsync<SessionInfo>(new JsonSerializerOptions(JsonSerializerDefaults.Web)))!;

        var message = new StringBuilder().Insert(0, Sentence, new SessionOptions().MaxMessageLength / Sentence.Length).ToString();
        using var response = await client.PostAsJsonAsync($"/api/sessions/{session.Id}/messages", new SendMessageRequest(message));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(HttpStatusCode.BadRequest == response.StatusCode, text);
        Assert.Contains("context_length_exceeded", text, StringComparison.Ordinal);
        Assert.Contains("at least", text, StringComparison.Ordinal);
        Assert.Equal(0, calls.Count);
    }
}
