using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Sessions;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using static LlmServer.Tests.Sessions.HubTestExtensions;

namespace LlmServer.Tests.Sessions;

[Collection(SessionsCollection.Name)]
public sealed class ChatHubTests : IClassFixture<SessionServerFixture>
{
    // More than the decodes a closed gate lets through: the turn is still running when the test acts on it.
    private const int LongTurn = 400;
    private const int DecodesBeforeTheGate = 4;

    private readonly SessionServerFixture _fixture;
    private readonly SessionTestServer _server;
    private readonly ITestOutputHelper _output;

    public ChatHubTests(SessionServerFixture fixture, ITestOutputHelper output)
    {
        _fixture = fixture;
        _server = fixture.Server;
        _output = output;
    }

    [Fact]
    public async Task Create_send_stream_and_store_a_turn()
    {
        await using var hub = await _server.ConnectAsync();
        var created = await hub.CreateAsync(maxTokens: 24, systemPrompt: "You tell short stories.", title: "  Stories  ");
        Assert.Equal("Stories", created.Title);
        Assert.Equal("You tell short stories.", created.SystemPrompt);
        Assert.Equal(0, created.MessageCount);
        Assert.False(created.Generating);

        var events = await hub.Send(created.Id, "Once upon a time").CollectAsync();

        var done = AssertWellFormed(events);
        Assert.Equal(ChatStreamEvent.DoneType, done.Type);
        Assert.Contains(done.FinishReason, new[] { "stop", "length" });
        Assert.NotNull(done.Usage);
        Assert.NotNull(done.Timings);
        Assert.True(done.Usage.PromptTokens > 0);
        Assert.InRange(done.Usage.CompletionTokens, 1, 24);

        var detail = await hub.GetAsync(created.Id);
        Assert.Equal(2, detail.Info.MessageCount);
        Assert.False(detail.Info.Generating);
        Assert.Collection(
            detail.Messages,
            user =>
            {
                Assert.Equal((0, "user", "Once upon a time"), (user.Index, user.Role, user.Content));
                Assert.Null(user.FinishReason);
            },
            assistant =>
            {
                Assert.Equal((1, "assistant"), (assistant.Index, assistant.Role));
                Assert.Equal(Text(events), assistant.Content);
                Assert.Equal(done.FinishReason, assistant.FinishReason);
                Assert.Equal(done.Usage.PromptTokens, assistant.PromptTokens);
                Assert.Equal(done.Usage.CachedTokens, assistant.CachedTokens);
                Assert.Equal(done.Usage.CompletionTokens, assistant.CompletionTokens);
            });

        var listed = await hub.InvokeAsync<SessionInfo[]>("ListSessions");
        Assert.Equal(created.Id, Assert.Single(listed, s => s.Id == created.Id).Id);
    }

    [Fact]
    public async Task Stream_events_leave_out_the_fields_they_do_not_carry()
    {
        await using var hub = await _server.ConnectAsync();
        var created = await hub.CreateAsync(maxTokens: 4);

        var events = new List<JsonElement>();
        await hub.StreamAsync<JsonElement>("SendMessage", created.Id, "Once upon a time").ReadEachAsync(events.Add);

        // A delta is its seq, type and text; done has no code or message; nothing is written as null.
        Assert.All(events, e => Assert.All(e.EnumerateObject(), p => Assert.NotEqual(JsonValueKind.Null, p.Value.ValueKind)));
        Assert.All(events.SkipLast(1), e => Assert.Equal(["seq", "type", "text"], e.EnumerateObject().Select(p => p.Name)));
        Assert.Equal("done", events[^1].GetProperty("type").GetString());
        Assert.Equal(["seq", "type", "finishReason", "usage", "timings"], events[^1].EnumerateObject().Select(p => p.Name).Take(5));
        Assert.DoesNotContain(events[^1].EnumerateObject(), p => p.Name is "text" or "code" or "message");
    }

    [Fact]
    public async Task Sessions_are_listed_newest_first_and_can_be_renamed_and_reconfigured()
    {
        await using var hub = await _server.ConnectAsync();
        var first = await hub.CreateAsync();
        var second = await hub.CreateAsync();
        var renamed = await hub.InvokeAsync<SessionInfo>("RenameSession", first.Id, "Renamed");
        Assert.Equal("Renamed", renamed.Title);

        Assert.True(renamed.UpdatedAt >= second.UpdatedAt);
        var listed = await hub.InvokeAsync<SessionInfo[]>("ListSessions");
        Assert.Equal(listed.OrderByDescending(s => s.UpdatedAt).Select(s => s.UpdatedAt), listed.Select(s => s.UpdatedAt));
        Assert.Contains(listed, s => s.Id == first.Id && s.Title == "Renamed" && s.UpdatedAt == renamed.UpdatedAt);
        Assert.Contains(listed, s => s.Id == second.Id);

        var settings = new SessionSettings(Temperature: 0.5, TopP: 0.9, MaxTokens: 8, Seed: 42);
        var updated = await hub.InvokeAsync<SessionInfo>("UpdateSettings", second.Id, settings, "Be brief.");
        Assert.Equal(settings, updated.Settings);
        Assert.Equal("Be brief.", updated.SystemPrompt);

        var unchangedPrompt = await hub.InvokeAsync<SessionInfo>("UpdateSettings", second.Id, new SessionSettings(MaxTokens: 4), null);
        Assert.Equal("Be brief.", unchangedPrompt.SystemPrompt);
        Assert.Equal(new SessionSettings(MaxTokens: 4), unchangedPrompt.Settings);

        var cleared = await hub.InvokeAsync<SessionInfo>("UpdateSettings", second.Id, null, string.Empty);
        Assert.Null(cleared.SystemPrompt);
        Assert.Equal(new SessionSettings(MaxTokens: 4), cleared.Settings);
    }

    [Fact]
    public async Task StopGeneration_ends_the_stream_as_cancelled_and_stores_the_text_so_far()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: LongTurn);
        var events = new List<ChatStreamEvent>();
        _fixture.Gate.CloseAfter(DecodesBeforeTheGate);
        try
        {
            await hub.Send(session.Id, "Once upon a time").ReadEachAsync(async (item, cancellationToken) =>
            {
                events.Add(item);
                if (events.Count == 1)
                {
                    // The stop has reached the engine when the call returns.
                    await hub.InvokeAsync("StopGeneration", session.Id, cancellationToken);
                    _fixture.Gate.Open();
                }
            });
        }
        finally
        {
            _fixture.Gate.Open();
        }

        var done = AssertWellFormed(events);
        Assert.Equal("cancelled", done.FinishReason);
        var assistant = (await hub.GetAsync(session.Id)).Messages[^1];
        Assert.Equal(("assistant", "cancelled"), (assistant.Role, assistant.FinishReason));
        Assert.Equal(Text(events), assistant.Content);
        Assert.True(done.Usage!.CompletionTokens < LongTurn);
    }

    [Fact]
    public async Task Cancelling_the_stream_on_the_client_stops_the_generation()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: LongTurn);
        using var cancel = new CancellationTokenSource();
        var received = new List<ChatStreamEvent>();
        var stopped = _fixture.Cancellations.NextCancellation();
        _fixture.Gate.CloseAfter(DecodesBeforeTheGate);
        try
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hub.Send(session.Id, "Once upon a time", cancel.Token).ReadEachAsync(async (item, _) =>
            {
                received.Add(item);
                await cancel.CancelAsync();
            }));
            await stopped;
        }
        finally
        {
            _fixture.Gate.Open();
        }

        // The stop reaches the server after the client's stream ended: wait for the generation's own last event,
        // which is published once the cancelled answer is stored.
        var ending = AssertWellFormed(await hub.StreamAsync<ChatStreamEvent>("ResumeStream", session.Id, received[^1].Seq).CollectAsync(), received[^1].Seq + 1);
        Assert.Equal((ChatStreamEvent.DoneType, "cancelled"), (ending.Type, ending.FinishReason));
        var detail = await hub.GetAsync(session.Id);
        Assert.False(detail.Info.Generating);
        var assistant = detail.Messages[^1];
        Assert.Equal(("assistant", "cancelled"), (assistant.Role, assistant.FinishReason));
        Assert.StartsWith(Text(received), assistant.Content, StringComparison.Ordinal);
        Assert.True(assistant.CompletionTokens < LongTurn);
    }

    [Fact]
    public async Task A_busy_session_refuses_a_second_send()
    {
        await using var hub = await _server.ConnectAsync();
        await using var other = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: LongTurn);
        _fixture.Gate.CloseAfter(DecodesBeforeTheGate);
        try
        {
            await using var first = hub.Send(session.Id, "Once upon a time").GetAsyncEnumerator();
            Assert.True(await first.MoveNextAsync());

            await AssertHubErrorAsync("busy", () => other.Send(session.Id, "Another message").CollectAsync());
            await AssertHubErrorAsync("busy", () => hub.StreamAsync<ChatStreamEvent>("Regenerate", session.Id).CollectAsync());
            Assert.True((await other.GetAsync(session.Id)).Info.Generating);

            await other.InvokeAsync("StopGeneration", session.Id);
            _fixture.Gate.Open();
            var rest = new List<ChatStreamEvent> { first.Current };
            while (await first.MoveNextAsync())
            {
                rest.Add(first.Current);
            }

            Assert.Equal("cancelled", AssertWellFormed(rest).FinishReason);
        }
        finally
        {
            _fixture.Gate.Open();
        }

        var detail = await hub.GetAsync(session.Id);
        Assert.Equal(["user", "assistant"], detail.Messages.Select(m => m.Role));
    }

    [Fact]
    public async Task Regenerate_replaces_the_last_assistant_message()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 12);
        await hub.Send(session.Id, "Tom had a dog").CollectAsync();
        var before = await hub.GetAsync(session.Id);

        var events = await hub.StreamAsync<ChatStreamEvent>("Regenerate", session.Id).CollectAsync();

        Assert.Equal(ChatStreamEvent.DoneType, AssertWellFormed(events).Type);
        var after = await hub.GetAsync(session.Id);
        Assert.Equal(2, after.Messages.Count);
        Assert.Equal(before.Messages[0], after.Messages[0]);
        Assert.Equal(Text(events), after.Messages[1].Content);
        Assert.True(after.Messages[1].CreatedAt >= before.Messages[1].CreatedAt);
    }

    [Fact]
    public async Task EditMessage_replaces_a_user_message_and_drops_what_followed()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 8);
        await hub.Send(session.Id, "Tom had a dog").CollectAsync();
        await hub.Send(session.Id, "The dog was big").CollectAsync();
        Assert.Equal(4, (await hub.GetAsync(session.Id)).Messages.Count);

        await AssertHubErrorAsync("invalid_argument", () => hub.StreamAsync<ChatStreamEvent>("EditMessage", session.Id, 1, "not a user message").CollectAsync());
        await AssertHubErrorAsync("invalid_argument", () => hub.StreamAsync<ChatStreamEvent>("EditMessage", session.Id, 4, "out of range").CollectAsync());
        await AssertHubErrorAsync("invalid_argument", () => hub.StreamAsync<ChatStreamEvent>("EditMessage", session.Id, 0, " ").CollectAsync());

        var events = await hub.StreamAsync<ChatStreamEvent>("EditMessage", session.Id, 0, "Lily had a cat").CollectAsync();

        Assert.Equal(ChatStreamEvent.DoneType, AssertWellFormed(events).Type);
        var detail = await hub.GetAsync(session.Id);
        Assert.Equal(["user", "assistant"], detail.Messages.Select(m => m.Role));
        Assert.Equal("Lily had a cat", detail.Messages[0].Content);
        Assert.Equal(Text(events), detail.Messages[1].Content);
    }

    [Fact]
    public async Task DeleteSession_removes_it_and_frees_its_kv_slot()
    {
        await using var hub = await _server.ConnectAsync();
        var generator = _server.Server.Services.GetRequiredService<ITextGenerator>();
        var session = await hub.CreateAsync();
        await hub.Send(session.Id, "Once upon a time").CollectAsync();
        var residentBefore = generator.GetStatus().ResidentSessions;
        Assert.True(residentBefore > 0);

        await hub.InvokeAsync("DeleteSession", session.Id);

        // The scheduler frees the slot on its next loop turn.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (generator.GetStatus().ResidentSessions != residentBefore - 1 && DateTime.UtcNow < deadline)
        {
            // No event marks an eviction the loop has applied; the status it publishes is polled.
            await Task.Delay(10);
        }

        Assert.Equal(residentBefore - 1, generator.GetStatus().ResidentSessions);
        await AssertHubErrorAsync("session_not_found", () => hub.GetAsync(session.Id));
        Assert.DoesNotContain(await hub.InvokeAsync<SessionInfo[]>("ListSessions"), s => s.Id == session.Id);
        await AssertHubErrorAsync("session_not_found", () => hub.InvokeAsync("DeleteSession", session.Id));
    }

    [Fact]
    public async Task The_second_turn_reuses_the_first_turns_kv_cache()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 24, systemPrompt: "A story for children.");
        var first = AssertWellFormed(await hub.Send(session.Id, "Tom had a dog").CollectAsync());
        var second = AssertWellFormed(await hub.Send(session.Id, "The dog was big").CollectAsync());

        var turn1 = first.Usage!;
        var turn2 = second.Usage!;
        _output.WriteLine(
            $"turn 1: prompt {turn1.PromptTokens}, generated {turn1.CompletionTokens} (conversation {turn1.PromptTokens + turn1.CompletionTokens}); " +
            $"turn 2: prompt {turn2.PromptTokens}, cached {turn2.CachedTokens}");
        Assert.True(turn2.CachedTokens > 0);
        Assert.True(turn2.CachedTokens >= turn1.PromptTokens, $"cached {turn2.CachedTokens} < first prompt {turn1.PromptTokens}");

        // All of turn 1 but its last sampled token, which ended the turn before it was ever decoded into the cache.
        Assert.True(turn2.CachedTokens >= turn1.PromptTokens + turn1.CompletionTokens - 1, $"cached {turn2.CachedTokens} of {turn1.PromptTokens + turn1.CompletionTokens}");
        Assert.Equal(turn2.CachedTokens, (await hub.GetAsync(session.Id)).Messages[^1].CachedTokens);
    }

    [Fact]
    public async Task Resume_after_a_dropped_connection_gets_every_event_exactly_once_in_order()
    {
        var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 64);
        var seen = new List<ChatStreamEvent>();
        try
        {
            await hub.Send(session.Id, "Once upon a time").ReadEachAsync(async (item, cancellationToken) =>
            {
                seen.Add(item);
                if (seen.Count == 3)
                {
                    // Drop the connection under the running stream.
                    await hub.StopAsync(cancellationToken);
                }
            });
        }
        catch (Exception ex) when (ex is HubException or OperationCanceledException or InvalidOperationException or IOException)
        {
            _output.WriteLine($"stream ended by the drop: {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            await hub.DisposeAsync();
        }

        Assert.True(seen.Count >= 3);
        Assert.All(seen, e => Assert.Equal(ChatStreamEvent.DeltaType, e.Type));
        var lastSeq = seen[^1].Seq;

        await using var again = await _server.ConnectAsync();
        var resumed = await again.StreamAsync<ChatStreamEvent>("ResumeStream", session.Id, lastSeq).CollectAsync();

        var done = AssertWellFormed(resumed, firstSeq: lastSeq + 1);
        Assert.Equal(ChatStreamEvent.DoneType, done.Type);
        Assert.NotEqual("cancelled", done.FinishReason);
        var all = seen.Concat(resumed).ToList();
        AssertWellFormed(all);
        var assistant = (await again.GetAsync(session.Id)).Messages[^1];
        Assert.Equal(Text(all), assistant.Content);
        Assert.Equal(done.FinishReason, assistant.FinishReason);

        // A second resume from the start replays the whole finished generation.
        var replay = await again.StreamAsync<ChatStreamEvent>("ResumeStream", session.Id, 0L).CollectAsync();
        Assert.Equal(all, replay);
    }

    [Fact]
    public async Task Bad_ids_and_bad_arguments_give_stable_error_codes()
    {
        await using var hub = await _server.ConnectAsync();
        const string missing = "0123456789abcdef0123456789abcdef";
        await AssertHubErrorAsync("session_not_found", () => hub.GetAsync(missing));
        await AssertHubErrorAsync("session_not_found", () => hub.InvokeAsync<SessionInfo>("RenameSession", missing, "x"));
        await AssertHubErrorAsync("session_not_found", () => hub.InvokeAsync<SessionInfo>("UpdateSettings", missing, new SessionSettings(), null));
        await AssertHubErrorAsync("session_not_found", () => hub.InvokeAsync("DeleteSession", missing));
        await AssertHubErrorAsync("session_not_found", () => hub.InvokeAsync("StopGeneration", missing));
        await AssertHubErrorAsync("session_not_found", () => hub.Send(missing, "hello").CollectAsync());
        await AssertHubErrorAsync("session_not_found", () => hub.StreamAsync<ChatStreamEvent>("Regenerate", missing).CollectAsync());
        await AssertHubErrorAsync("session_not_found", () => hub.StreamAsync<ChatStreamEvent>("ResumeStream", missing, 0L).CollectAsync());
        await AssertHubErrorAsync("invalid_argument", () => hub.GetAsync(""));

        await AssertHubErrorAsync("invalid_argument", () => hub.InvokeAsync<SessionInfo>("CreateSession", new CreateSessionRequest(Settings: new SessionSettings(Temperature: 5))));
        await AssertHubErrorAsync("invalid_argument", () => hub.InvokeAsync<SessionInfo>("CreateSession", new CreateSessionRequest(Settings: new SessionSettings(TopP: 0, MaxTokens: 0, Seed: -1))));
        await AssertHubErrorAsync("invalid_argument", () => hub.InvokeAsync<SessionInfo>("CreateSession", new CreateSessionRequest(Title: " ")));

        var session = await hub.CreateAsync();
        await AssertHubErrorAsync("invalid_argument", () => hub.InvokeAsync<SessionInfo>("RenameSession", session.Id, ""));
        await AssertHubErrorAsync("invalid_argument", () => hub.Send(session.Id, "").CollectAsync());
        await AssertHubErrorAsync("invalid_argument", () => hub.Send(session.Id, new string('a', new SessionOptions().MaxMessageLength + 1)).CollectAsync());
        await AssertHubErrorAsync("invalid_argument", () => hub.StreamAsync<ChatStreamEvent>("Regenerate", session.Id).CollectAsync());
        await AssertHubErrorAsync("invalid_argument", () => hub.StreamAsync<ChatStreamEvent>("ResumeStream", session.Id, -1L).CollectAsync());
        await AssertHubErrorAsync("no_generation", () => hub.StreamAsync<ChatStreamEvent>("ResumeStream", session.Id, 0L).CollectAsync());
        Assert.Empty((await hub.GetAsync(session.Id)).Messages);
    }

    [Fact]
    public async Task A_prompt_longer_than_the_slot_gives_context_length_exceeded_and_stores_nothing()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync();
        var longText = string.Join(' ', Enumerable.Repeat("Tom and Lily played in the park with a big red ball.", 200));

        await AssertHubErrorAsync("context_length_exceeded", () => hub.Send(session.Id, longText).CollectAsync());

        Assert.Empty((await hub.GetAsync(session.Id)).Messages);
    }
}

[CollectionDefinition(Name)]
public sealed class SessionsCollection
{
    public const string Name = "Sessions";
}
