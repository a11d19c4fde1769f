using System.ComponentModel.DataAnnotations;
using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using Microsoft.Extensions.AI;

namespace LlmServer.Extensions.Tests;

[Collection(EngineHostCollection.Name)]
public sealed class ChatClientTests(EngineHostFixture host)
{
    private const string StoryPrompt = "Once upon a time there was a little cat.";

    private static ChatOptions Greedy(int maxTokens, bool ignoreEos = false) => new()
    {
        Temperature = 0,
        MaxOutputTokens = maxTokens,
        AdditionalProperties = ignoreEos ? new() { ["ignore_eos"] = true } : null,
    };

    [Fact]
    public async Task GetResponseAsync_returns_text_finish_reason_usage_and_ids()
    {
        var response = await host.ChatClient.GetResponseAsync(StoryPrompt, Greedy(12, ignoreEos: true));

        Assert.False(string.IsNullOrEmpty(response.Text));
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(host.Generator.Model!.Id, response.ModelId);
        Assert.False(string.IsNullOrEmpty(response.ResponseId));
        var message = Assert.Single(response.Messages);
        Assert.Equal(ChatRole.Assistant, message.Role);
        Assert.Equal(response.ResponseId, message.MessageId);
        Assert.NotNull(response.Usage);
        Assert.True(response.Usage.InputTokenCount > 0);
        Assert.Equal(12, response.Usage.OutputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + 12, response.Usage.TotalTokenCount);
        Assert.Null(response.ConversationId);
    }

    [Fact]
    public async Task GetStreamingResponseAsync_streams_text_then_finish_reason_and_usage_under_one_response_id()
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in host.ChatClient.GetStreamingResponseAsync(StoryPrompt, Greedy(12, ignoreEos: true)))
        {
            updates.Add(update);
        }

        Assert.True(updates.Count > 2, "expected several text updates and a final one");
        var responseId = updates[0].ResponseId;
        Assert.False(string.IsNullOrEmpty(responseId));
        Assert.All(updates, u => Assert.Equal(responseId, u.ResponseId));
        Assert.All(updates, u => Assert.Equal(host.Generator.Model!.Id, u.ModelId));
        Assert.All(updates[..^1], u => Assert.Null(u.FinishReason));

        var last = updates[^1];
        Assert.Equal(ChatFinishReason.Length, last.FinishReason);
        var usage = Assert.Single(last.Contents.OfType<UsageContent>()).Details;
        Assert.Equal(12, usage.OutputTokenCount);
        Assert.True(usage.InputTokenCount > 0);

        // The same greedy request, not streamed, gives the same text: both paths are one engine request.
        var streamedText = string.Concat(updates.Select(u => u.Text));
        var response = await host.ChatClient.GetResponseAsync(StoryPrompt, Greedy(12, ignoreEos: true));
        Assert.Equal(response.Text, streamedText);

        var coalesced = updates.ToChatResponse();
        Assert.Equal(12, coalesced.Usage!.OutputTokenCount);
        Assert.Equal(streamedText, coalesced.Text);
    }

    [Fact]
    public async Task A_seed_reproduces_sampled_text()
    {
        ChatOptions Sampled() => new() { Temperature = 1.0f, TopK = 0, TopP = 1.0f, Seed = 1234, MaxOutputTokens = 24 };

        var first = await host.ChatClient.GetResponseAsync(StoryPrompt, Sampled());
        var second = await host.ChatClient.GetResponseAsync(StoryPrompt, Sampled());

        Assert.False(string.IsNullOrEmpty(first.Text));
        Assert.Equal(first.Text, second.Text);
    }

    [Fact]
    public async Task MaxOutputTokens_caps_the_length()
    {
        var capped = await host.ChatClient.GetResponseAsync(StoryPrompt, Greedy(5, ignoreEos: true));
        var longer = await host.ChatClient.GetResponseAsync(StoryPrompt, Greedy(15, ignoreEos: true));

        Assert.Equal(5, capped.Usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, capped.FinishReason);
        Assert.StartsWith(capped.Text, longer.Text, StringComparison.Ordinal);
        Assert.True(longer.Text.Length > capped.Text.Length);
    }

    [Fact]
    public async Task Stop_sequences_cut_the_text_before_the_stop()
    {
        var full = (await host.ChatClient.GetResponseAsync(StoryPrompt, Greedy(40, ignoreEos: true))).Text;
        var (stop, at) = PickStop(full);

        var fromOptions = await host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions
        {
            Temperature = 0,
            MaxOutputTokens = 40,
            StopSequences = [stop],
            AdditionalProperties = new() { ["ignore_eos"] = true },
        });
        var fromAdditionalProperty = await host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions
        {
            Temperature = 0,
            MaxOutputTokens = 40,
            AdditionalProperties = new() { ["ignore_eos"] = true, ["stop"] = new[] { stop } },
        });

        Assert.Equal(full[..at], fromOptions.Text);
        Assert.Equal(ChatFinishReason.Stop, fromOptions.FinishReason);
        Assert.Equal(full[..at], fromAdditionalProperty.Text);
    }

    [Fact]
    public async Task A_conversation_id_reuses_the_kv_cache_on_the_next_turn()
    {
        var options = new ChatOptions { ConversationId = "conversation-" + Guid.NewGuid().ToString("N"), Temperature = 0, MaxOutputTokens = 8 };
        List<ChatMessage> history = [new(ChatRole.User, StoryPrompt)];

        var residentBefore = host.Generator.GetStatus().ResidentSessions;
        try
        {
            var first = await host.ChatClient.GetResponseAsync(history, options);

            // The conversation id became the engine's session key: its sequence stays resident in a slot.
            await host.WaitUntilIdleAsync();
            Assert.Equal(residentBefore + 1, host.Generator.GetStatus().ResidentSessions);
            history.AddRange(first.Messages);
            history.Add(new ChatMessage(ChatRole.User, "What did the cat do next?"));
            var second = await host.ChatClient.GetResponseAsync(history, options);

            Assert.True(second.Usage!.CachedInputTokenCount >= first.Usage!.InputTokenCount, $"cached {second.Usage.CachedInputTokenCount} of {second.Usage.InputTokenCount}, first prompt {first.Usage.InputTokenCount}");
            Assert.True(second.Usage.CachedInputTokenCount < second.Usage.InputTokenCount);
        }
        finally
        {
            host.Generator.EvictSession(options.ConversationId);
        }
    }

    [Fact]
    public async Task Cancelling_a_stream_ends_it_and_frees_the_slot()
    {
        using var cts = new CancellationTokenSource();
        var received = 0;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in host.ChatClient.GetStreamingResponseAsync(StoryPrompt, new ChatOptions { Temperature = 0, AdditionalProperties = new() { ["ignore_eos"] = true } }, cts.Token))
            {
                received++;
                cts.Cancel();
            }
        });

        Assert.True(received >= 1);
        await host.WaitUntilIdleAsync();
        Assert.Equal(0, host.Generator.GetStatus().Running);
    }

    [Fact]
    public async Task Leaving_a_stream_early_frees_the_slot()
    {
        await foreach (var update in host.ChatClient.GetStreamingResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["ignore_eos"] = true } }))
        {
            Assert.False(string.IsNullOrEmpty(update.Text));
            break;
        }

        await host.WaitUntilIdleAsync();
        Assert.Equal(0, host.Generator.GetStatus().Running);
    }

    [Fact]
    public async Task Cancelling_GetResponseAsync_ends_it_and_frees_the_slot()
    {
        using var cts = new CancellationTokenSource();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // The gate holds the engine past the answer's first tokens: the call is still running when it is cancelled,
        // however fast the model writes (no event marks a non-streaming call's admission; the held decode does).
        host.Gate.CloseAfter(4);
        try
        {
            var call = host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["ignore_eos"] = true } }, cts.Token);
            await host.Gate.Blocked.WaitAsync(bound.Token);
            Assert.Equal(1, host.Generator.GetStatus().Running);
            await cts.CancelAsync();
            host.Gate.Open();

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        }
        finally
        {
            host.Gate.Open();
        }

        await host.WaitUntilIdleAsync();
        Assert.Equal(0, host.Generator.GetStatus().Running);
    }

    [Fact]
    public async Task A_json_schema_response_format_yields_json_that_matches_it()
    {
        using var schema = JsonDocument.Parse("""
            {
              "type": "object",
              "properties": {
                "mood": { "enum": ["happy", "sad"] },
                "age": { "type": "integer" },
                "friendly": { "type": "boolean" }
              },
              "required": ["mood", "age", "friendly"]
            }
            """);
        var options = Greedy(200);
        options.ResponseFormat = ChatResponseFormat.ForJsonSchema(schema.RootElement, "cat");

        var response = await host.ChatClient.GetResponseAsync(StoryPrompt, options);

        Assert.True(response.FinishReason == ChatFinishReason.Stop, response.Text);
        using var json = JsonDocument.Parse(response.Text);
        var properties = json.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(["mood", "age", "friendly"], properties);
        Assert.Contains(json.RootElement.GetProperty("mood").GetString(), new[] { "happy", "sad" });
        Assert.True(json.RootElement.GetProperty("age").TryGetInt64(out _));
        Assert.True(json.RootElement.GetProperty("friendly").ValueKind is JsonValueKind.True or JsonValueKind.False);
    }

    [Fact]
    public async Task Structured_output_GetResponseAsync_of_T_deserializes_the_constrained_answer()
    {
        var response = await host.ChatClient.GetResponseAsync<CatCard>(StoryPrompt, Greedy(200));

        Assert.True(response.TryGetResult(out var card), response.Text);
        Assert.InRange(card.Age, 0, 30);
        Assert.True(Enum.IsDefined(card.Mood), response.Text);
    }

    [Fact]
    public async Task A_schema_using_every_supported_keyword_is_accepted_by_the_engine()
    {
        using var schema = JsonDocument.Parse("""
            {
              "$defs": { "tag": { "type": "string", "maxLength": 3 } },
              "type": "object",
              "properties": {
                "name": { "type": ["string", "null"], "maxLength": 4 },
                "tags": { "type": "array", "items": { "$ref": "#/$defs/tag" }, "maxItems": 2 },
                "score": { "anyOf": [{ "type": "number" }, { "const": "none" }] },
                "kind": { "const": "cat" }
              },
              "required": ["kind"]
            }
            """);
        var options = Greedy(120);
        options.ResponseFormat = ChatResponseFormat.ForJsonSchema(schema.RootElement);

        var response = await host.ChatClient.GetResponseAsync(StoryPrompt, options);

        Assert.True(response.FinishReason == ChatFinishReason.Stop, response.Text);
        using var json = JsonDocument.Parse(response.Text);
        Assert.Equal("cat", json.RootElement.GetProperty("kind").GetString());
    }

    [Fact]
    public async Task A_json_response_format_without_schema_yields_a_json_object()
    {
        var options = Greedy(30);
        options.ResponseFormat = ChatResponseFormat.Json;

        var response = await host.ChatClient.GetResponseAsync(StoryPrompt, options);

        // Any object is allowed, so a story model may keep adding members until max tokens: then the text must
        // still be a valid beginning of one JSON object.
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(response.Text), isFinalBlock: response.FinishReason == ChatFinishReason.Stop, state: default);
        Assert.True(reader.Read(), response.Text);
        Assert.Equal(JsonTokenType.StartObject, reader.TokenType);
        var tokens = 1;
        while (reader.Read())
        {
            tokens++;
        }

        Assert.True(tokens > 1, response.Text);
        Assert.True(response.FinishReason == ChatFinishReason.Stop ? reader.CurrentDepth == 0 : response.Usage!.OutputTokenCount == 30, response.Text);
    }

    [Fact]
    public async Task Unsupported_or_invalid_input_is_refused_before_anything_runs()
    {
        using var schema = JsonDocument.Parse("""{ "type": "object", "properties": { "a": { "type": "uuid" } } }""");
        var badSchema = new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema.RootElement) };
        var image = new ChatMessage(ChatRole.User, [new TextContent("What is this?"), new DataContent(new byte[] { 1, 2, 3 }, "image/png")]);

        var invalid = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, badSchema));
        Assert.Equal(GenerationErrorCode.InvalidRequest, invalid.Code);
        Assert.Contains("uuid", invalid.Message, StringComparison.Ordinal);

        await Assert.ThrowsAsync<NotSupportedException>(() => host.ChatClient.GetResponseAsync([image]));

        var twoGrammars = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions
        {
            ResponseFormat = ChatResponseFormat.Json,
            AdditionalProperties = new() { ["grammar"] = "root ::= \"a\"" },
        }));
        Assert.Equal(GenerationErrorCode.InvalidRequest, twoGrammars.Code);

        var negative = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { MaxOutputTokens = -1 }));
        Assert.Equal(GenerationErrorCode.InvalidRequest, negative.Code);
    }

    [Fact]
    public async Task A_refused_option_is_named_as_the_caller_set_it()
    {
        var maxTokens = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { MaxOutputTokens = -1 }));
        Assert.Equal("ChatOptions.MaxOutputTokens: must be at least 1.", maxTokens.Message);
        Assert.Equal(GenerationField.MaxTokens, maxTokens.Field);
        Assert.Equal("must be at least 1.", Assert.IsType<GenerationException>(maxTokens.InnerException).Message);

        var topP = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { TopP = 0 }));
        Assert.Equal("ChatOptions.TopP: must be greater than 0 and at most 1.", topP.Message);

        // A streamed request is refused on its first read, named the same way.
        var minP = await Assert.ThrowsAsync<GenerationException>(async () =>
        {
            await foreach (var update in host.ChatClient.GetStreamingResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["min_p"] = 2f } }))
            {
                Assert.Fail($"Nothing streams for a refused request: {update}");
            }
        });
        Assert.Equal("ChatOptions.AdditionalProperties[\"min_p\"]: must be between 0 and 1.", minP.Message);
        // Stop sequences come from two options: the refusal names the one set.
        var stopKey = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["stop"] = new[] { "a", string.Empty } } }));
        Assert.Equal("ChatOptions.AdditionalProperties[\"stop\"]: takes at most 16 non-empty sequences.", stopKey.Message);
        var stopSequences = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { StopSequences = [string.Empty] }));
        Assert.Equal("ChatOptions.StopSequences: takes at most 16 non-empty sequences.", stopSequences.Message);
    }

    [Fact]
    public async Task An_option_the_client_itself_refuses_is_named_as_the_engine_refusals_are()
    {
        var minP = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["min_p"] = "high" } }));
        Assert.Equal("ChatOptions.AdditionalProperties[\"min_p\"]: must be a number.", minP.Message);
        Assert.Equal(GenerationField.MinP, minP.Field);
        Assert.Equal(GenerationErrorCode.InvalidRequest, minP.Code);
        Assert.Equal("must be a number.", Assert.IsType<GenerationException>(minP.InnerException).Message);

        // A streamed request is refused on its first read, named the same way.
        var penaltyLastN = await Assert.ThrowsAsync<GenerationException>(async () =>
        {
            await foreach (var update in host.ChatClient.GetStreamingResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["penalty_last_n"] = JsonDocument.Parse("1.5").RootElement } }))
            {
                Assert.Fail($"Nothing streams for a refused request: {update}");
            }
        });
        Assert.Equal("ChatOptions.AdditionalProperties[\"penalty_last_n\"]: must be a whole number.", penaltyLastN.Message);

        var ignoreEos = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["ignore_eos"] = "yes" } }));
        Assert.Equal("ChatOptions.AdditionalProperties[\"ignore_eos\"]: must be true or false.", ignoreEos.Message);
        var stop = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["stop"] = 5 } }));
        Assert.Equal("ChatOptions.AdditionalProperties[\"stop\"]: must be a string or a list of strings.", stop.Message);
        var grammar = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { AdditionalProperties = new() { ["grammar"] = 5 } }));
        Assert.Equal("ChatOptions.AdditionalProperties[\"grammar\"]: must be a GBNF grammar string.", grammar.Message);

        // The grammar comes from two options: the refusal names the one set, or both.
        var both = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions
        {
            ResponseFormat = ChatResponseFormat.Json,
            AdditionalProperties = new() { ["grammar"] = "root ::= \"a\"" },
        }));
        Assert.Equal("ChatOptions.ResponseFormat and ChatOptions.AdditionalProperties[\"grammar\"]: give either a JSON response format or a grammar, not both.", both.Message);
        using var schema = JsonDocument.Parse("""{ "type": "object", "properties": { "a": { "type": "uuid" } } }""");
        var badSchema = await Assert.ThrowsAsync<GenerationException>(() => host.ChatClient.GetResponseAsync(StoryPrompt, new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema.RootElement) }));
        Assert.StartsWith("ChatOptions.ResponseFormat: the JSON schema cannot be enforced: ", badSchema.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GetService_returns_the_model_and_the_metadata_through_the_pipeline()
    {
        var model = host.ChatClient.GetService<ModelInfo>();
        var metadata = host.ChatClient.GetService<ChatClientMetadata>();

        Assert.NotNull(model);
        Assert.Equal(host.Generator.Model, model);
        Assert.NotNull(metadata);
        Assert.Equal("llmserver", metadata.ProviderName);
        Assert.Equal(model.Id, metadata.DefaultModelId);
        Assert.Same(host.Generator, host.ChatClient.GetService<ITextGenerator>());
    }

    /// <summary>A three-character piece of <paramref name="text"/> whose first occurrence is past its start.</summary>
    private static (string Stop, int At) PickStop(string text)
    {
        for (var at = 8; at + 3 <= text.Length; at++)
        {
            var candidate = text.Substring(at, 3);
            if (text.IndexOf(candidate, StringComparison.Ordinal) == at && !string.IsNullOrWhiteSpace(candidate))
            {
                return (candidate, at);
            }
        }

        throw new InvalidOperationException($"No usable stop sequence in '{text}'.");
    }

    public enum CatMood
    {
        Happy,
        Sad,
    }

    public sealed record CatCard(CatMood Mood, [property: Range(0, 30)] int Age, bool Friendly);
}
