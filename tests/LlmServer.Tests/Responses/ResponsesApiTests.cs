using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Operations;
using OpenAI.Responses;
using static LlmServer.Tests.OpenAi.OpenAiHttp;

#pragma warning disable OPENAI001 // The SDK marks the Responses client experimental.

namespace LlmServer.Tests.Responses;

/// <summary>The Responses API through the official OpenAI .NET SDK, and its event stream over raw HTTP.</summary>
public sealed class ResponsesApiTests(SharedServerFixture fixture) : IClassFixture<SharedServerFixture>
{
    private const string ModelId = "stories260K";

    private readonly TestServer _server = fixture.Server;

    [Fact]
    public async Task Official_sdk_creates_gets_and_deletes_a_response()
    {
        var client = Client();
        ResponseResult response = await client.CreateResponseAsync(new CreateResponseOptions
        {
            Model = ModelId,
            Instructions = "You tell stories.",
            MaxOutputTokenCount = 8,
            Temperature = 0,
            InputItems = { ResponseItem.CreateUserMessageItem("Once upon a time") },
        });

        Assert.StartsWith("resp_", response.Id);
        Assert.Equal(ModelId, response.Model);
        Assert.Equal(ResponseStatus.Incomplete, response.Status);
        Assert.Equal(ResponseIncompleteStatusReason.MaxOutputTokens, response.IncompleteStatusDetails.Reason);
        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(response.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
        var text = response.GetOutputText();
        Assert.False(string.IsNullOrEmpty(text));
        Assert.Equal(text, message.Content[0].Text);
        Assert.Equal(8, response.Usage.OutputTokenCount);
        Assert.True(response.Usage.InputTokenCount > 0);
        Assert.Equal(response.Usage.InputTokenCount + 8, response.Usage.TotalTokenCount);

        ResponseResult fetched = await client.GetResponseAsync(response.Id);
        Assert.Equal(text, fetched.GetOutputText());

        ResponseDeletionResult deleted = await client.DeleteResponseAsync(response.Id);
        Assert.True(deleted.Deleted);
        var gone = await Assert.ThrowsAsync<ClientResultException>(() => client.GetResponseAsync(response.Id));
        Assert.Equal(404, gone.Status);
    }

    [Fact]
    public async Task Official_sdk_streams_text_and_the_final_response()
    {
        var client = Client();
        var text = new StringBuilder();
        var sequence = new List<int>();
        ResponseResult? final = null;
        var updates = await client.CreateResponseStreamingAsync(new CreateResponseOptions
        {
            Model = ModelId,
            MaxOutputTokenCount = 200,
            Temperature = 0,
            StreamingEnabled = true,
            InputItems = { ResponseItem.CreateUserMessageItem("Once upon a time") },
        });
        await foreach (var update in updates)
        {
            sequence.Add(update.SequenceNumber);
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate delta:
                    text.Append(delta.Delta);
                    break;
                case StreamingResponseCompletedUpdate completed:
                    final = completed.Response;
                    break;
                case StreamingResponseIncompleteUpdate incomplete:
                    final = incomplete.Response;
                    break;
            }
        }

        Assert.NotNull(final);
        Assert.Contains(final.Status, new ResponseStatus?[] { ResponseStatus.Completed, ResponseStatus.Incomplete });
        Assert.Equal(text.ToString(), final.GetOutputText());
        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.True(final.Usage.OutputTokenCount > 0);
    }

    [Fact]
    public async Task Stream_sends_semantic_events_in_order()
    {
        using var response = await PostStreamAsync(_server.Client, "/v1/responses", """
            {"model":"stories260K","input":"Once upon a time","max_output_tokens":6,"temperature":0,"stream":true}
            """);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await NamedSse.ReadAllAsync(response);

        Assert.All(events, e => Assert.Equal(e.Name, e.Data.GetProperty("type").GetString()));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Data.GetProperty("sequence_number").GetInt32()));
        var names = events.Select(e => e.Name).ToList();
        Assert.Equal(["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"], names[..4]);
        Assert.Equal(["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete"], names[^4..]);
        Assert.All(names[4..^4], name => Assert.Equal("response.output_text.delta", name));
        Assert.True(names.Count > 8);

        Assert.Equal("in_progress", events[0].Data.GetProperty("response").GetProperty("status").GetString());
        var itemId = events[2].Data.GetProperty("item").GetProperty("id").GetString();
        var deltas = string.Concat(events[4..^4].Select(e =>
        {
            Assert.Equal(itemId, e.Data.GetProperty("item_id").GetString());
            return e.Data.GetProperty("delta").GetString();
        }));
        Assert.Equal(deltas, events[^4].Data.GetProperty("text").GetString());
        var final = events[^1].Data.GetProperty("response");
        Assert.Equal("incomplete", final.GetProperty("status").GetString());
        Assert.Equal("max_output_tokens", final.GetProperty("incomplete_details").GetProperty("reason").GetString());
        Assert.Equal(deltas, final.GetProperty("output_text").GetString());
        Assert.Equal(6, final.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Previous_response_id_continues_with_the_kv_cache_warm()
    {
        var client = Client();
        ResponseResult first = await client.CreateResponseAsync(new CreateResponseOptions
        {
            Model = ModelId,
            MaxOutputTokenCount = 16,
            Temperature = 0,
            InputItems = { ResponseItem.CreateUserMessageItem("Once upon a time there was a little girl named Lily.") },
        });

        ResponseResult second = await client.CreateResponseAsync(new CreateResponseOptions
        {
            Model = ModelId,
            PreviousResponseId = first.Id,
            MaxOutputTokenCount = 4,
            Temperature = 0,
            InputItems = { ResponseItem.CreateUserMessageItem("She liked to play.") },
        });

        Assert.Equal(first.Id, second.PreviousResponseId);

        // The second prompt holds the first turn, answer included: longer, and served mostly from the KV cache.
        Assert.True(second.Usage.InputTokenCount > first.Usage.InputTokenCount + first.Usage.OutputTokenCount);
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount >= first.Usage.InputTokenCount, $"cached {second.Usage.InputTokenDetails.CachedTokenCount} of {second.Usage.InputTokenCount}");
    }

    [Fact]
    public async Task A_streamed_response_can_be_continued_as_soon_as_its_completed_event_arrives()
    {
        // The response is stored before its last event is written: continued at once, before the stream has even
        // closed, it is found.
        using var streamed = await PostStreamAsync(_server.Client, "/v1/responses", """
            {"input":"Once upon a time there was a little girl named Lily.","max_output_tokens":8,"temperature":0,"stream":true}
            """);
        await using var events = NamedSse.ReadAsync(streamed).GetAsyncEnumerator();
        JsonElement? first = null;
        while (first is null && await events.MoveNextAsync())
        {
            if (events.Current.Name is "response.completed" or "response.incomplete")
            {
                first = events.Current.Data.GetProperty("response");
            }
        }

        Assert.NotNull(first);
        var (status, second, _) = await PostAsync(_server.Client, "/v1/responses", $$"""
            {"previous_response_id":"{{first.Value.GetProperty("id").GetString()}}","input":"She liked to play.","max_output_tokens":2,"temperature":0}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        var usage = second.GetProperty("usage");
        Assert.True(usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32() >= first.Value.GetProperty("usage").GetProperty("input_tokens").GetInt32(), usage.ToString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Store_false_is_not_kept(bool stream)
    {
        var body = $$"""{"input":"Once upon a time","max_output_tokens":2,"store":false,"stream":{{(stream ? "true" : "false")}}}""";
        JsonElement response;
        if (stream)
        {
            using var streamed = await PostStreamAsync(_server.Client, "/v1/responses", body);
            response = (await NamedSse.ReadAllAsync(streamed))[^1].Data.GetProperty("response");
        }
        else
        {
            (_, response, _) = await PostAsync(_server.Client, "/v1/responses", body);
        }

        Assert.Equal("incomplete", response.GetProperty("status").GetString());
        Assert.False(response.GetProperty("store").GetBoolean());
        var id = response.GetProperty("id").GetString();

        using var get = await _server.Client.GetAsync($"/v1/responses/{id}");
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);

        var (continued, error, _) = await PostAsync(_server.Client, "/v1/responses", $$"""{"input":"More","max_output_tokens":2,"previous_response_id":"{{id}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, continued);
        AssertOpenAiError(error, "invalid_request_error", "previous_response_id");
    }

    [Fact]
    public async Task A_stored_response_belongs_to_its_api_key()
    {
        await using var server = await TestServer.StartAsync(extraArgs: [$"--Auth:ApiKeys:0={AuthTests.KeyA}", $"--Auth:ApiKeys:1={AuthTests.KeyB}"]);
        string id;
        using (var created = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/responses", AuthTests.KeyA, Json("""{"input":"Once upon a time","max_output_tokens":2}""")))
        {
            Assert.Equal(HttpStatusCode.OK, created.StatusCode);
            id = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        }

        using (var read = await AuthTests.SendAsync(server, HttpMethod.Get, $"/v1/responses/{id}", AuthTests.KeyB))
        {
            Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        }

        var continuation = $$"""{"input":"More","max_output_tokens":2,"previous_response_id":"{{id}}"}""";
        using (var continued = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/responses", AuthTests.KeyB, Json(continuation)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, continued.StatusCode);
            AssertOpenAiError(JsonDocument.Parse(await continued.Content.ReadAsStringAsync()).RootElement, "invalid_request_error", "previous_response_id");
        }

        using (var deleted = await AuthTests.SendAsync(server, HttpMethod.Delete, $"/v1/responses/{id}", AuthTests.KeyB))
        {
            Assert.Equal(HttpStatusCode.NotFound, deleted.StatusCode);
        }

        using (var owner = await AuthTests.SendAsync(server, HttpMethod.Post, "/v1/responses", AuthTests.KeyA, Json(continuation)))
        {
            Assert.Equal(HttpStatusCode.OK, owner.StatusCode);
        }
    }

    [Fact]
    public async Task Json_schema_format_constrains_the_output()
    {
        var client = Client();
        ResponseResult response = await client.CreateResponseAsync(new CreateResponseOptions
        {
            Model = ModelId,
            MaxOutputTokenCount = 64,
            InputItems = { ResponseItem.CreateUserMessageItem("Once upon a time") },
            TextOptions = new ResponseTextOptions
            {
                TextFormat = ResponseTextFormat.CreateJsonSchemaFormat(
                    "flag",
                    BinaryData.FromString("""{"type":"object","properties":{"happy":{"type":"boolean"}},"required":["happy"]}"""),
                    jsonSchemaIsStrict: true),
            },
        });

        Assert.Equal(ResponseStatus.Completed, response.Status);
        using var json = JsonDocument.Parse(response.GetOutputText());
        Assert.Equal(JsonValueKind.Object, json.RootElement.ValueKind);
        Assert.Contains(json.RootElement.GetProperty("happy").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
    }

    [Theory]
    [InlineData("""{"max_output_tokens":2}""", "input")]
    [InlineData("""{"input":[{"type":"item_reference","id":"msg_1"}]}""", "input[0].type")]
    [InlineData("""{"input":[{"type":"reasoning","summary":[],"content":[{"type":"reasoning_text","text":"Hm."}]}]}""", "input[0]")]
    [InlineData("""{"input":[{"content":"Hi"}]}""", "input[0].role")]
    [InlineData("""{"input":[{"role":"user","content":"Hi"},{"role":"user"}]}""", "input[1].content")]
    [InlineData("""{"input":"Hi","max_output_tokens":0}""", "max_output_tokens")]
    [InlineData("""{"input":"Hi","text":{"format":{"type":"json_schema","name":"x","schema":{"allOf":[]}}}}""", "text.format.schema")]
    [InlineData("""{"input":"Hi","text":{"format":{"type":"json_schema","name":"x","schema":{"$ref":"#"}}}}""", "text.format.schema")]
    [InlineData("""{"input":"Hi","text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object","properties":{"a":{"type":"string","minLength":5000}},"required":["a"]}}}}""", "text.format.schema")]
    public async Task Bad_request_names_the_field(string json, string param)
    {
        var (status, body, _) = await PostAsync(_server.Client, "/v1/responses", json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertOpenAiError(body, "invalid_request_error", param);
    }

    private ResponsesClient Client() =>
        new(new ApiKeyCredential("any-key"), new ResponsesClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
}
