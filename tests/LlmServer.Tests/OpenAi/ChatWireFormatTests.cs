using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

namespace LlmServer.Tests.OpenAi;

/// <summary>The exact wire format of <c>/v1/chat/completions</c>, chunk by chunk, against the real server on stories260K.</summary>
public sealed class ChatWireFormatTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private readonly HttpClient _client = fixture.Server.Client;

    [Fact]
    public async Task Streaming_with_include_usage_follows_the_wire_format_chunk_by_chunk()
    {
        using var response = await PostStreamAsync(_client, ChatPath, """
            {"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],
             "max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", ContentType(response)?.MediaType);

        var transcript = await ReadAllEventsAsync(response);
        var events = transcript.Events;
        Assert.Equal("[DONE]", events[^1].Data);
        Assert.Single(events, e => e.Data == "[DONE]");

        var chunks = transcript.Chunks;
        var id = chunks[0].GetProperty("id").GetString();
        Assert.StartsWith("chatcmpl-", id);
        foreach (var chunk in chunks)
        {
            Assert.Equal(id, chunk.GetProperty("id").GetString());
            Assert.Equal("chat.completion.chunk", chunk.GetProperty("object").GetString());
            Assert.Equal("stories260K", chunk.GetProperty("model").GetString());
            Assert.True(chunk.GetProperty("created").GetInt64() > 0);
            Assert.StartsWith("fp_", chunk.GetProperty("system_fingerprint").GetString());
            Assert.Equal(JsonValueKind.Array, chunk.GetProperty("choices").ValueKind);
        }

        // First: the role. Then content deltas. Then an empty delta with the finish reason. Then usage alone.
        var first = chunks[0].GetProperty("choices")[0];
        Assert.Equal("assistant", first.GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("finish_reason").ValueKind);

        var usageChunk = chunks[^1];
        Assert.Empty(usageChunk.GetProperty("choices").EnumerateArray());
        var usage = usageChunk.GetProperty("usage");
        Assert.Equal(6, usage.GetProperty("completion_tokens").GetInt32());
        var promptTokens = usage.GetProperty("prompt_tokens").GetInt32();
        Assert.True(promptTokens > 0);
        Assert.Equal(promptTokens + 6, usage.GetProperty("total_tokens").GetInt32());
        Assert.True(usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32() >= 0);

        var finishChunk = chunks[^2].GetProperty("choices")[0];
        Assert.Equal("length", finishChunk.GetProperty("finish_reason").GetString());
        Assert.Empty(finishChunk.GetProperty("delta").EnumerateObject());

        var contentChunks = chunks.Skip(1).Take(chunks.Count - 3).ToList();
        Assert.NotEmpty(contentChunks);
        var text = new StringBuilder();
        foreach (var chunk in contentChunks)
        {
            var choice = Assert.Single(chunk.GetProperty("choices").EnumerateArray());
            Assert.Equal(0, choice.GetProperty("index").GetInt32());
            Assert.Equal(JsonValueKind.Null, choice.GetProperty("finish_reason").ValueKind);
            Assert.False(choice.GetProperty("delta").TryGetProperty("role", out _));
            text.Append(choice.GetProperty("delta").GetProperty("content").GetString());
        }

        Assert.False(string.IsNullOrEmpty(text.ToString()));
        foreach (var chunk in chunks.Take(chunks.Count - 1))
        {
            Assert.Equal(JsonValueKind.Null, chunk.GetProperty("usage").ValueKind);
        }
    }

    [Fact]
    public async Task Streaming_without_include_usage_sends_no_usage_chunk()
    {
        using var response = await PostStreamAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":3,"temperature":0,"stream":true}
            """);
        var chunks = (await ReadAllEventsAsync(response)).Chunks;
        Assert.All(chunks, c => Assert.NotEmpty(c.GetProperty("choices").EnumerateArray()));
        Assert.All(chunks, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Non_streaming_response_has_the_chat_completion_shape()
    {
        var (status, body, response) = await PostAsync(_client, ChatPath, """
            {"model":"stories260K","messages":[{"role":"system","content":"Tell a story."},{"role":"user","content":[{"type":"text","text":"Once upon"},{"type":"text","text":"a time"}]}],
             "max_completion_tokens":5,"temperature":0,"seed":42,"user":"tester","some_unknown_field":{"x":1}}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        AssertJsonContentType(response);
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString());
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.True(body.GetProperty("created").GetInt64() > 0);
        Assert.Equal("stories260K", body.GetProperty("model").GetString());
        Assert.StartsWith("fp_", body.GetProperty("system_fingerprint").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.False(string.IsNullOrEmpty(choice.GetProperty("message").GetProperty("content").GetString()));
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(5, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + 5, usage.GetProperty("total_tokens").GetInt32());
        Assert.True(usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32() >= 0);
    }

    [Fact]
    public async Task N_2_streams_and_returns_two_choices_each_with_a_finish()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"n":2,"temperature":1,"seed":7}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal("length", c.GetProperty("finish_reason").GetString()));
        Assert.Equal(8, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        using var response = await PostStreamAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"n":2,"temperature":1,"stream":true,"stream_options":{"include_usage":true}}
            """);
        var chunks = (await ReadAllEventsAsync(response)).Chunks;
        var byIndex = chunks
            .SelectMany(c => c.GetProperty("choices").EnumerateArray())
            .GroupBy(c => c.GetProperty("index").GetInt32())
            .ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal([0, 1], byIndex.Keys.Order());
        foreach (var (_, parts) in byIndex)
        {
            Assert.Equal("assistant", parts[0].GetProperty("delta").GetProperty("role").GetString());
            Assert.Equal("length", parts[^1].GetProperty("finish_reason").GetString());
            Assert.Single(parts, p => p.GetProperty("finish_reason").ValueKind != JsonValueKind.Null);
        }

        Assert.Equal(8, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Stop_sequence_ends_the_choice_with_stop_and_is_not_emitted()
    {
        // stories260K writes commas and full stops within a few tokens; "." must end it and never appear.
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"temperature":0,"stop":["."]}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.DoesNotContain(".", choice.GetProperty("message").GetProperty("content").GetString(), StringComparison.Ordinal);

        using var response = await PostStreamAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"temperature":0,"stop":[".", "!"],"stream":true}
            """);
        var chunks = (await ReadAllEventsAsync(response)).Chunks;
        var streamed = string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("delta"))
            .Where(d => d.TryGetProperty("content", out _))
            .Select(d => d.GetProperty("content").GetString()));
        Assert.DoesNotContain(".", streamed, StringComparison.Ordinal);
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Logprobs_report_each_token_with_its_alternatives()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0,"logprobs":true,"top_logprobs":3}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        var entries = choice.GetProperty("logprobs").GetProperty("content").EnumerateArray().ToList();
        Assert.Equal(4, entries.Count);
        var text = new StringBuilder();
        foreach (var entry in entries)
        {
            var token = entry.GetProperty("token").GetString()!;
            text.Append(token);
            Assert.True(entry.GetProperty("logprob").GetSingle() <= 0);
            Assert.Equal(Encoding.UTF8.GetBytes(token), entry.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32()));
            var top = entry.GetProperty("top_logprobs").EnumerateArray().ToList();
            Assert.Equal(3, top.Count);

            // Greedy: the chosen token is the most likely one.
            Assert.Equal(token, top[0].GetProperty("token").GetString());
            Assert.True(top[0].GetProperty("logprob").GetSingle() >= top[1].GetProperty("logprob").GetSingle());
        }

        Assert.Equal(choice.GetProperty("message").GetProperty("content").GetString(), text.ToString());

        using var response = await PostStreamAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0,"logprobs":true,"top_logprobs":2,"stream":true}
            """);
        var contentChunks = (await ReadAllEventsAsync(response)).Chunks
            .Select(c => c.GetProperty("choices")[0])
            .Where(c => c.GetProperty("delta").TryGetProperty("content", out var content) && content.GetString()!.Length > 0)
            .ToList();
        Assert.NotEmpty(contentChunks);
        Assert.Equal(4, contentChunks.Sum(c => c.GetProperty("logprobs").GetProperty("content").GetArrayLength()));
        Assert.All(contentChunks, c => Assert.All(
            c.GetProperty("logprobs").GetProperty("content").EnumerateArray(),
            e => Assert.Equal(2, e.GetProperty("top_logprobs").GetArrayLength())));
    }

    [Fact]
    public async Task With_text_held_for_a_stop_sequence_every_content_chunk_has_logprobs_and_each_token_comes_once()
    {
        // Every "e" may start the stop sequence, so its token's text and log-probability wait for the next character.
        using var response = await PostStreamAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":40,"ignore_eos":true,"temperature":0,"logprobs":true,"stop":["e\u0001"],"stream":true}
            """);
        var contentChunks = (await ReadAllEventsAsync(response)).Chunks
            .Select(c => c.GetProperty("choices")[0])
            .Where(c => c.GetProperty("delta").TryGetProperty("content", out var content) && content.GetString()!.Length > 0)
            .ToList();
        Assert.NotEmpty(contentChunks);
        Assert.All(contentChunks, c => Assert.Equal(JsonValueKind.Array, c.GetProperty("logprobs").GetProperty("content").ValueKind));
        var entries = contentChunks.SelectMany(c => c.GetProperty("logprobs").GetProperty("content").EnumerateArray()).ToList();
        Assert.Equal(40, entries.Count);
        Assert.Equal(
            string.Concat(contentChunks.Select(c => c.GetProperty("delta").GetProperty("content").GetString())),
            string.Concat(entries.Select(e => e.GetProperty("token").GetString())));
    }

    [Fact]
    public async Task Json_schema_output_parses_and_matches_the_schema()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"How do you feel?"}],"max_tokens":80,"temperature":0,
             "response_format":{"type":"json_schema","json_schema":{"name":"mood","strict":true,"schema":{
               "type":"object",
               "properties":{"mood":{"type":"string","enum":["happy","sad"]},"ok":{"type":"boolean"}},
               "required":["mood","ok"],"additionalProperties":false}}}}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var output = JsonDocument.Parse(choice.GetProperty("message").GetProperty("content").GetString()!).RootElement;
        Assert.Contains(output.GetProperty("mood").GetString(), new[] { "happy", "sad" });
        Assert.Contains(output.GetProperty("ok").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.Equal(2, output.EnumerateObject().Count());
    }

    [Fact]
    public async Task Json_schema_grammar_covers_the_common_subset()
    {
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Describe a pet."}],"max_tokens":300,"temperature":0,
             "response_format":{"type":"json_schema","json_schema":{"name":"pet","schema":{
               "type":"object",
               "properties":{
                 "name":{"type":"string","maxLength":6},
                 "age":{"type":"integer"},
                 "weight":{"type":"number"},
                 "tags":{"type":"array","items":{"enum":["cat","dog"]},"maxItems":2},
                 "owner":{"$ref":"#/$defs/owner"},
                 "note":{"type":"string","nullable":true,"maxLength":4},
                 "alive":{"anyOf":[{"type":"boolean"},{"type":"null"}]},
                 "nickname":{"type":"string","maxLength":3}},
               "required":["name","age","weight","tags","owner","note","alive"],
               "$defs":{"owner":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}}}}}}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var output = JsonDocument.Parse(choice.GetProperty("message").GetProperty("content").GetString()!).RootElement;
        Assert.True(output.GetProperty("name").GetString()!.Length <= 6);
        Assert.True(output.GetProperty("age").TryGetInt64(out _));
        Assert.Equal(JsonValueKind.Number, output.GetProperty("weight").ValueKind);
        var tags = output.GetProperty("tags").EnumerateArray().Select(t => t.GetString()).ToList();
        Assert.True(tags.Count <= 2);
        Assert.All(tags, t => Assert.Contains(t, new[] { "cat", "dog" }));
        Assert.True(output.GetProperty("owner").GetProperty("id").TryGetInt64(out _));
        Assert.Contains(output.GetProperty("note").ValueKind, new[] { JsonValueKind.String, JsonValueKind.Null });
        Assert.Contains(output.GetProperty("alive").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False, JsonValueKind.Null });
        Assert.All(output.EnumerateObject(), p => Assert.Contains(p.Name, new[] { "name", "age", "weight", "tags", "owner", "note", "alive", "nickname" }));
    }

    [Fact]
    public async Task Integer_and_number_bounds_hold()
    {
        // Hot sampling from a story model: only the grammar keeps the numbers in range.
        for (var seed = 1; seed <= 3; seed++)
        {
            var (status, body, _) = await PostAsync(_client, ChatPath, $$$$$"""
                {"messages":[{"role":"user","content":"Pick numbers."}],"max_tokens":120,"n":3,"temperature":1.5,"seed":{{{{{seed}}}}},
                 "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{
                   "type":"object",
                   "properties":{"a":{"type":"integer","minimum":-5,"maximum":1000},"b":{"type":"integer","exclusiveMinimum":99,"exclusiveMaximum":123457},"c":{"type":"integer","maximum":-40},"d":{"type":"number","minimum":0.5,"maximum":1.5},"e":{"type":"number","exclusiveMaximum":-2.25}},
                   "required":["a","b","c","d","e"]}}}}
                """);
            Assert.Equal(HttpStatusCode.OK, status);
            foreach (var choice in body.GetProperty("choices").EnumerateArray())
            {
                Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
                var output = JsonDocument.Parse(choice.GetProperty("message").GetProperty("content").GetString()!).RootElement;
                Assert.InRange(output.GetProperty("a").GetInt64(), -5, 1000);
                Assert.InRange(output.GetProperty("b").GetInt64(), 100, 123456);
                Assert.InRange(output.GetProperty("c").GetInt64(), -9_999_999_999_999_999, -40);
                Assert.InRange(output.GetProperty("d").GetDecimal(), 0.5m, 1.5m);
                Assert.True(output.GetProperty("e").GetDecimal() < -2.25m, output.ToString());
            }
        }
    }

    [Fact]
    public async Task Json_object_output_is_json_and_parses_when_complete()
    {
        // A story model writes long strings; the grammar still keeps every prefix valid JSON, and an output the
        // model finished (finish_reason stop) parses as an object.
        var (status, body, _) = await PostAsync(_client, ChatPath, """
            {"messages":[{"role":"user","content":"Reply in JSON."}],"max_tokens":40,"n":2,"temperature":1,"seed":3,
             "response_format":{"type":"json_object"}}
            """);
        Assert.Equal(HttpStatusCode.OK, status);
        foreach (var choice in body.GetProperty("choices").EnumerateArray())
        {
            var content = choice.GetProperty("message").GetProperty("content").GetString()!;
            Assert.StartsWith("{", content);
            AssertValidJsonPrefix(content);
            if (choice.GetProperty("finish_reason").GetString() == "stop")
            {
                Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(content).RootElement.ValueKind);
            }
            else
            {
                Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
            }
        }
    }

    /// <summary>A non-final reader stops at the end of the data without error only when the text so far is valid JSON.</summary>
    private static void AssertValidJsonPrefix(string text)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text), isFinalBlock: false, state: default);
        while (reader.Read())
        {
        }
    }
}
