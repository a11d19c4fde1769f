using LlmServer.Sessions;
using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// What every session store does, run against SQLite and PostgreSQL alike: checkpoints, owner scoping, and the turn
/// lease that keeps two servers from running a turn of one session at once. Stores opened by
/// <see cref="OpenAsync"/> within one test share one database.
/// </summary>
public abstract class SessionStoreContractTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);

    /// <summary>A store over this test's database, as the server named <paramref name="replicaId"/> would open it.</summary>
    private protected abstract Task<ISessionStore> OpenAsync(string replicaId, TimeProvider time);

    [Fact]
    public async Task Checkpoints_replace_each_other_and_an_unfinished_answer_is_marked_interrupted_at_start()
    {
        var store = await StartAsync("a", TimeProvider.System);
        await store.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        Assert.True(await store.BeginTurnAsync("k", "s1", 0, User(0), Now, null, CancellationToken.None));
        Assert.True(await store.SaveAnswerAsync("k", "s1", Answer(1, "Once", null), CancellationToken.None));
        Assert.True(await store.SaveAnswerAsync("k", "s1", Answer(1, "Once upon", null), CancellationToken.None));

        var partial = (await store.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages;
        Assert.Equal(2, partial.Count);
        Assert.Equal(("Once upon", (string?)null), (partial[1].Content, partial[1].FinishReason));

        Assert.Equal(1, await store.InterruptUnfinishedAsync(CancellationToken.None));
        Assert.Equal(0, await store.InterruptUnfinishedAsync(CancellationToken.None));
        var after = (await store.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages[1];
        Assert.Equal(("Once upon", "interrupted", (int?)0), (after.Content, after.FinishReason, after.ContextStart));
    }

    [Fact]
    public async Task An_answers_reasoning_is_stored_apart_from_its_text_and_kept_when_it_is_interrupted()
    {
        var store = await StartAsync("a", TimeProvider.System);
        await store.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        Assert.True(await store.BeginTurnAsync("k", "s1", 0, User(0), Now, null, CancellationToken.None));

        // Checkpoints while it thinks, then the answer after the thinking.
        Assert.True(await store.SaveAnswerAsync("k", "s1", Answer(1, "", null) with { Reasoning = "Let me" }, CancellationToken.None));
        Assert.Equal(("", "Let me"), Answered((await store.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages));
        Assert.True(await store.SaveAnswerAsync("k", "s1", Answer(1, "Hi", "stop") with { Reasoning = "Let me think." }, CancellationToken.None));
        var finished = (await store.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages;
        Assert.Equal(("Hi", "Let me think."), Answered(finished));
        Assert.Null(finished[0].Reasoning);

        // A later turn cut while it thinks keeps the thinking it checkpointed.
        Assert.True(await store.BeginTurnAsync("k", "s1", 2, User(2), Now, null, CancellationToken.None));
        Assert.Null((await store.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages[3].Reasoning);
        Assert.True(await store.SaveAnswerAsync("k", "s1", Answer(3, "", null) with { Reasoning = "Hmm" }, CancellationToken.None));
        Assert.Equal(1, await store.InterruptUnfinishedAsync(CancellationToken.None));
        var cut = (await store.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages[3];
        Assert.Equal(("", "Hmm", "interrupted"), (cut.Content, cut.Reasoning, cut.FinishReason));

        static (string Content, string? Reasoning) Answered(IReadOnlyList<SessionMessage> messages) => (messages[1].Content, messages[1].Reasoning);
    }

    [Fact]
    public async Task An_answer_cut_before_its_first_checkpoint_is_kept_as_an_empty_interrupted_message()
    {
        var time = new FakeTimeProvider(Now);
        var a = await StartAsync("a", time);
        await a.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        await a.CreateAsync(new StoredSession("s2", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);

        // Server a restarts in both sessions' first turns; then it stops in s2's second, which server b takes over
        // once the lease ran out.
        Assert.True(await a.BeginTurnAsync("k", "s1", 0, User(0), Now, 0, CancellationToken.None));
        Assert.True(await a.BeginTurnAsync("k", "s2", 0, User(0), Now, null, CancellationToken.None));
        var running = (await a.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages;
        Assert.Equal(new (string, string?)[] { ("user", null), ("assistant", null) }, running.Select(m => (m.Role, m.FinishReason)));

        var restarted = await StartAsync("a", time);
        Assert.Equal(2, await restarted.InterruptUnfinishedAsync(CancellationToken.None));
        var cut = (await restarted.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages;
        Assert.Equal(new (string, string, string?)[] { ("user", "hi", null), ("assistant", "", "interrupted") }, cut.Select(m => (m.Role, m.Content, m.FinishReason)));

        // The placeholder records the window the answer was begun in, as a checkpoint would (the page's divider).
        Assert.Equal(0, cut[1].ContextStart);
        Assert.True(await restarted.BeginTurnAsync("k", "s1", 2, User(2), Now, null, CancellationToken.None));

        var b = await OpenAsync("b", time);
        Assert.True(await a.BeginTurnAsync("k", "s2", 2, User(2), Now, null, CancellationToken.None));
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.True(await b.BeginTurnAsync("k", "s2", 4, User(4), Now, null, CancellationToken.None));
        var taken = (await b.GetConversationAsync("k", "s2", CancellationToken.None))!.Messages;
        Assert.Equal(
            ["user", "assistant", "user", "assistant", "user", "assistant"],
            taken.Select(m => m.Role));
        Assert.Equal(("", "interrupted"), (taken[3].Content, taken[3].FinishReason));
    }

    [Fact]
    public async Task Reads_and_writes_are_scoped_by_owner()
    {
        var store = await StartAsync("a", TimeProvider.System);
        await store.CreateAsync(new StoredSession("s1", "k", "t", "be kind", new SessionSettings(0.5, 0.9, 10, 7), Now, Now, 0), CancellationToken.None);
        await store.CreateAsync(new StoredSession("s2", null, "anon", null, new SessionSettings(), Now, Now.AddSeconds(1), 0), CancellationToken.None);

        Assert.False(await store.BeginTurnAsync("other", "s1", 0, User(0), Now, null, CancellationToken.None));
        Assert.False(await store.SaveAnswerAsync(null, "s1", Answer(0, "x", "stop"), CancellationToken.None));
        Assert.Empty((await store.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages);
        Assert.Null(await store.GetAsync(null, "s1", CancellationToken.None));
        Assert.Equal("s1", Assert.Single(await store.ListAsync("k", CancellationToken.None)).Id);
        Assert.Equal("s2", Assert.Single(await store.ListAsync(null, CancellationToken.None)).Id);
        Assert.False(await store.DeleteAsync("other", "s1", CancellationToken.None));

        var loaded = await store.GetAsync("k", "s1", CancellationToken.None);
        Assert.Equal(new SessionSettings(0.5, 0.9, 10, 7), loaded!.Settings);
        var updated = await store.UpdateAsync("k", "s1", "renamed", string.Empty, null, Now.AddSeconds(5), CancellationToken.None);
        Assert.Equal(("renamed", (string?)null, new SessionSettings(0.5, 0.9, 10, 7)), (updated!.Title, updated.SystemPrompt, updated.Settings));
        Assert.Null(await store.UpdateAsync("other", "s1", "x", null, null, Now, CancellationToken.None));
        Assert.True(await store.DeleteAsync("k", "s1", CancellationToken.None));
        Assert.Null(await store.GetConversationAsync("k", "s1", CancellationToken.None));
    }

    [Fact]
    public async Task A_turn_leases_its_session_so_another_server_gets_busy_until_the_answer_is_finished()
    {
        var time = new FakeTimeProvider(Now);
        var a = await StartAsync("a", time);
        var b = await OpenAsync("b", time);
        await a.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        Assert.True(await a.BeginTurnAsync("k", "s1", 0, User(0), Now, null, CancellationToken.None));

        var busy = await Assert.ThrowsAsync<SessionException>(() => b.BeginTurnAsync("k", "s1", 1, User(1), Now, null, CancellationToken.None));
        Assert.Equal(SessionErrorCodes.Busy, busy.Code);
        Assert.True(busy.RetryAfter > TimeSpan.Zero);

        // A checkpoint renews the lease past its first end; the finished answer gives it up.
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.True(await a.SaveAnswerAsync("k", "s1", Answer(1, "Once", null), CancellationToken.None));
        time.Advance(TimeSpan.FromSeconds(20));
        await Assert.ThrowsAsync<SessionException>(() => b.BeginTurnAsync("k", "s1", 2, User(2), Now, null, CancellationToken.None));

        // A server starting up leaves a turn another live server holds alone.
        Assert.Equal(0, await b.InterruptUnfinishedAsync(CancellationToken.None));

        Assert.True(await a.SaveAnswerAsync("k", "s1", Answer(1, "Once upon", "stop"), CancellationToken.None));
        Assert.True(await b.BeginTurnAsync("k", "s1", 2, User(2), Now, null, CancellationToken.None));
        var messages = (await b.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages;
        Assert.Equal(["user", "assistant", "user", "assistant"], messages.Select(m => m.Role));
        Assert.Equal(("stop", (string?)null), (messages[1].FinishReason, messages[3].FinishReason));
    }

    [Fact]
    public async Task A_stopped_servers_turn_is_taken_over_when_its_lease_runs_out()
    {
        var time = new FakeTimeProvider(Now);
        var a = await StartAsync("a", time);
        var b = await OpenAsync("b", time);
        await a.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        Assert.True(await a.BeginTurnAsync("k", "s1", 0, User(0), Now, null, CancellationToken.None));
        Assert.True(await a.SaveAnswerAsync("k", "s1", Answer(1, "Once", null), CancellationToken.None));

        // Server a stops answering: after its lease, b's turn goes ahead and keeps a's partial answer as interrupted.
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.True(await b.BeginTurnAsync("k", "s1", 2, User(2), Now, null, CancellationToken.None));
        var messages = (await b.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages;
        Assert.Equal(("Once", "interrupted"), (messages[1].Content, messages[1].FinishReason));

        // Should a come back, its late writes no longer land: the turn is b's now.
        Assert.False(await a.SaveAnswerAsync("k", "s1", Answer(1, "Once upon", "stop"), CancellationToken.None));
        Assert.Equal("Once", (await b.GetConversationAsync("k", "s1", CancellationToken.None))!.Messages[1].Content);
    }

    [Fact]
    public async Task A_restarted_server_takes_its_own_unfinished_turn_back_at_once()
    {
        var time = new FakeTimeProvider(Now);
        var before = await StartAsync("a", time);
        await before.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        Assert.True(await before.BeginTurnAsync("k", "s1", 0, User(0), Now, null, CancellationToken.None));
        Assert.True(await before.SaveAnswerAsync("k", "s1", Answer(1, "Once", null), CancellationToken.None));

        var after = await StartAsync("a", time);
        Assert.Equal(1, await after.InterruptUnfinishedAsync(CancellationToken.None));
        Assert.True(await after.BeginTurnAsync("k", "s1", 2, User(2), Now, null, CancellationToken.None));
    }

    [Fact]
    public async Task A_turn_on_another_server_shows_as_running_and_keeps_the_session_from_being_deleted_there()
    {
        var time = new FakeTimeProvider(Now);
        var a = await StartAsync("a", time);
        var b = await OpenAsync("b", time);
        await a.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        await a.CreateAsync(new StoredSession("s2", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);
        Assert.False((await b.GetAsync("k", "s1", CancellationToken.None))!.TurnRunning);

        Assert.True(await a.BeginTurnAsync("k", "s1", 0, User(0), Now, null, CancellationToken.None));
        Assert.True((await b.GetAsync("k", "s1", CancellationToken.None))!.TurnRunning);
        Assert.True((await b.GetConversationAsync("k", "s1", CancellationToken.None))!.Session.TurnRunning);
        Assert.Equal([true, false], (await b.ListAsync("k", CancellationToken.None)).OrderBy(s => s.Id).Select(s => s.TurnRunning));
        var busy = await Assert.ThrowsAsync<SessionException>(() => b.DeleteAsync("k", "s1", CancellationToken.None));
        Assert.Equal(SessionErrorCodes.Busy, busy.Code);
        Assert.True(busy.RetryAfter > TimeSpan.Zero);
        Assert.NotNull(await a.GetAsync("k", "s1", CancellationToken.None));

        Assert.True(await a.SaveAnswerAsync("k", "s1", Answer(1, "Once", "stop"), CancellationToken.None));
        Assert.False((await b.GetAsync("k", "s1", CancellationToken.None))!.TurnRunning);
        Assert.True(await b.DeleteAsync("k", "s1", CancellationToken.None));

        // A stopped server's turn stops counting once its lease ran out.
        Assert.True(await a.BeginTurnAsync("k", "s2", 0, User(0), Now, null, CancellationToken.None));
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.False((await b.GetAsync("k", "s2", CancellationToken.None))!.TurnRunning);
        Assert.True(await b.DeleteAsync("k", "s2", CancellationToken.None));
    }

    /// <summary>
    /// The server takes its times through <see cref="SessionTime"/>, cut to the store's millisecond, so a session's
    /// and its messages' times read back exactly, in UTC, even from a clock with finer ticks.
    /// </summary>
    [Fact]
    public async Task Times_the_server_takes_read_back_exactly()
    {
        var time = new FakeTimeProvider(Now + TimeSpan.FromTicks(4_567));
        var store = await StartAsync("a", time);
        var created = SessionTime.Now(time);
        await store.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), created, created, 0), CancellationToken.None);
        time.Advance(TimeSpan.FromTicks(12_345_678));
        var asked = SessionTime.Now(time);
        Assert.True(await store.BeginTurnAsync("k", "s1", 0, User(0) with { CreatedAt = asked }, asked, null, CancellationToken.None));
        time.Advance(TimeSpan.FromTicks(9_999));
        var answered = SessionTime.Now(time);
        Assert.True(await store.SaveAnswerAsync("k", "s1", Answer(1, "Once", "stop") with { CreatedAt = answered }, CancellationToken.None));

        var (session, messages) = (await store.GetConversationAsync("k", "s1", CancellationToken.None))!;
        Assert.Equal((created, TimeSpan.Zero), (session.CreatedAt, session.CreatedAt.Offset));
        Assert.Equal(
            new[] { (asked, TimeSpan.Zero), (answered, TimeSpan.Zero) },
            messages.Select(m => (m.CreatedAt, m.CreatedAt.Offset)));
        Assert.Equal(answered, session.UpdatedAt);
    }

    [Fact]
    public async Task The_database_has_one_store_id_that_every_server_on_it_reads()
    {
        var a = await StartAsync("a", TimeProvider.System);
        var b = await StartAsync("b", TimeProvider.System);
        Assert.True(ReplicaProtocol.SessionStoreIds.IsStoreId(a.StoreId));
        Assert.Equal(a.StoreId, b.StoreId);

        var id = ReplicaProtocol.SessionStoreIds.NewSessionId(a.StoreId);
        Assert.Equal(a.StoreId, ReplicaProtocol.SessionStoreIds.StoreOf(id));
        Assert.Null(ReplicaProtocol.SessionStoreIds.StoreOf(Guid.NewGuid().ToString("N")));
    }

    [Fact]
    public async Task A_stop_asked_of_another_servers_turn_is_recorded_with_its_lease_until_the_turn_ends()
    {
        var a = await StartAsync("a", TimeProvider.System);
        var b = await StartAsync("b", TimeProvider.System);
        await a.CreateAsync(new StoredSession("s1", "k", "t", null, new SessionSettings(), Now, Now, 0), CancellationToken.None);

        // No turn runs: nothing to ask.
        Assert.False(await b.RequestStopAsync("k", "s1", CancellationToken.None));

        Assert.True(await a.BeginTurnAsync("k", "s1", 0, User(0), Now, null, CancellationToken.None));
        Assert.False(await a.RequestStopAsync("k", "s1", CancellationToken.None));
        Assert.False(await b.RequestStopAsync("other", "s1", CancellationToken.None));
        Assert.False(await a.IsStopRequestedAsync("s1", CancellationToken.None));

        Assert.True(await b.RequestStopAsync("k", "s1", CancellationToken.None));
        Assert.True(await a.IsStopRequestedAsync("s1", CancellationToken.None));
        Assert.False(await b.IsStopRequestedAsync("s1", CancellationToken.None));

        // A checkpoint keeps it; the finished answer ends it, and the next turn starts without it.
        Assert.True(await a.SaveAnswerAsync("k", "s1", Answer(1, "Once", null), CancellationToken.None));
        Assert.True(await a.IsStopRequestedAsync("s1", CancellationToken.None));
        Assert.True(await a.SaveAnswerAsync("k", "s1", Answer(1, "Once", "cancelled"), CancellationToken.None));
        Assert.False(await a.IsStopRequestedAsync("s1", CancellationToken.None));
        Assert.False(await b.RequestStopAsync("k", "s1", CancellationToken.None));

        Assert.True(await a.BeginTurnAsync("k", "s1", 2, User(2), Now, null, CancellationToken.None));
        Assert.False(await a.IsStopRequestedAsync("s1", CancellationToken.None));
    }

    private async Task<ISessionStore> StartAsync(string replicaId, TimeProvider time)
    {
        var store = await OpenAsync(replicaId, time);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    private static SessionMessage User(int index) => new(index, "user", "hi", Now, null, null, null, null);

    private static SessionMessage Answer(int index, string text, string? finishReason) => new(index, "assistant", text, Now, null, null, null, finishReason, 0);
}
