using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Sessions;
using LlmServer.Tests.Infrastructure;
using LlmServer.Tests.Operations;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// A session turn's life around its faults, on the real model: a turn that fails after the engine admitted it
/// cancels the generation and closes its answer; the key's permit goes back when the engine is done, whatever the
/// store does after; the message count leaves out the answer being written. The engine's endings are held
/// (<see cref="HeldGenerator"/>) and faults are injected at known points (<see cref="FaultyTimers"/>,
/// <see cref="HeldAnswerStore"/>), so every wait is for an event.
/// </summary>
public sealed class TurnLifecycleTests
{
    private const string Key = KeyedSessionServer.Key;
    private const string Completion = """{"model":"stories260K","prompt":"Once upon a time","max_tokens":2}""";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task A_turn_that_fails_after_the_engine_admitted_it_cancels_the_generation_and_closes_its_answer()
    {
        var timers = new FaultyTimers();
        await using var fixture = await StartAsync(timers);
        await using var hub = await fixture.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 400);

        // The turn fails after the engine admitted it and the store took it: its answer's recorder cannot start.
        timers.FailNextTimerOf<AnswerRecorder>();
        await Assert.ThrowsAsync<HubException>(() => hub.Send(session.Id, "Once upon a time").CollectAsync());

        // The engine's generation is cancelled (its ending is held, so nothing else could end it), and the turn is gone.
        await fixture.Held.Cancelled.WaitAsync(fixture.Hang);
        Assert.False(fixture.Registry.IsGenerating(session.Id));

        // The stored turn is closed, not left half-written: the user message, then an empty answer that failed; the
        // session's lease is given up, so it does not show as generating.
        var detail = await hub.GetAsync(session.Id);
        Assert.False(detail.Info.Generating);
        Assert.Equal(new[] { "user", "assistant" }, detail.Messages.Select(m => m.Role));
        Assert.Equal(FinishReason.Error.ToName(), detail.Messages[1].FinishReason);
        Assert.Equal(string.Empty, detail.Messages[1].Content);

        // The key's one permit is back: the session answers its next turn.
        fixture.Held.Release();
        var events = await hub.Send(session.Id, "Once upon a time").CollectAsync();
        Assert.Equal(ChatStreamEvent.DoneType, HubTestExtensions.AssertWellFormed(events).Type);
    }

    [Fact]
    public async Task A_turns_key_permit_goes_back_when_the_engine_is_done_while_its_answer_is_still_being_stored()
    {
        await using var fixture = await StartAsync();
        await using var hub = await fixture.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 4);
        fixture.Held.Release();
        Store(fixture).HoldFinishedAnswers();

        // The turn's generation ends; its final save hangs.
        var turn = hub.Send(session.Id, "Once upon a time").CollectAsync();
        await Store(fixture).FinishedAnswerHeld.WaitAsync(fixture.Hang);
        Assert.True(fixture.Registry.IsGenerating(session.Id));

        // The engine is done with it, so the key's one permit is free for its next generation.
        using (var admitted = await AuthTests.SendAsync(fixture.Server, HttpMethod.Post, "/v1/completions", Key, Body(Completion)))
        {
            Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        }

        // The save goes on; the turn ends with its answer stored.
        Store(fixture).Release();
        var events = await turn.WaitAsync(fixture.Hang);
        Assert.Equal(ChatStreamEvent.DoneType, HubTestExtensions.AssertWellFormed(events).Type);
        var detail = await hub.GetAsync(session.Id);
        Assert.Equal(HubTestExtensions.Text(events), detail.Messages[^1].Content);
        Assert.NotNull(detail.Messages[^1].FinishReason);
    }

    [Fact]
    public async Task The_message_count_leaves_out_the_answer_being_written_over_REST_and_the_hub()
    {
        await using var fixture = await StartAsync();
        await using var hub = await fixture.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 8);

        // One user message, its answer running (its first event arrived, so its place is stored).
        var turn = hub.Send(session.Id, "Once upon a time").GetAsyncEnumerator();
        try
        {
            Assert.True(await turn.MoveNextAsync());
            Assert.Equal(ChatStreamEvent.DeltaType, turn.Current.Type);
            await AssertCountsAsync(fixture, hub, session.Id, expected: 1, messages: 2);

            fixture.Held.Release();
            Assert.Equal(ChatStreamEvent.DoneType, (await turn.LastEventAsync()).Type);
        }
        finally
        {
            await turn.DisposeAsync();
        }

        await AssertCountsAsync(fixture, hub, session.Id, expected: 2, messages: 2);
    }

    /// <summary>The session's count from the REST list and detail and the hub's list and detail, and its detail's messages.</summary>
    private static async Task AssertCountsAsync(KeyedSessionServer fixture, HubConnection hub, string id, int expected, int messages)
    {
        using (var listed = await AuthTests.SendAsync(fixture.Server, HttpMethod.Get, "/api/sessions", Key))
        {
            var sessions = await listed.Content.ReadFromJsonAsync<SessionInfo[]>(Json);
            Assert.Equal(expected, Assert.Single(sessions!, s => s.Id == id).MessageCount);
        }

        using (var got = await AuthTests.SendAsync(fixture.Server, HttpMethod.Get, $"/api/sessions/{id}", Key))
        {
            var detail = await got.Content.ReadFromJsonAsync<SessionDetail>(Json);
            Assert.Equal(expected, detail!.Info.MessageCount);
            Assert.Equal(messages, detail.Messages.Count);
        }

        Assert.Equal(expected, Assert.Single(await hub.InvokeAsync<SessionInfo[]>("ListSessions"), s => s.Id == id).MessageCount);
        Assert.Equal(expected, (await hub.GetAsync(id)).Info.MessageCount);
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The keyed server with a holdable store and, when given, an injectable clock fault.</summary>
    private static Task<KeyedSessionServer> StartAsync(FaultyTimers? timers = null) => KeyedSessionServer.StartAsync(services =>
    {
        HeldAnswerStore.Install(services);
        timers?.Install(services);
    });

    private static HeldAnswerStore Store(KeyedSessionServer server) => server.Server.Services.GetRequiredService<HeldAnswerStore>();
}
