using LlmServer.Engine.Generation;
using LlmServer.Responses;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Tests.Responses;

/// <summary>The store behind <c>previous_response_id</c>: bounded in size and in time, one API key's responses its own.</summary>
public sealed class ResponseStoreTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly EvictionRecorder _engine = new();

    [Fact]
    public void Beyond_max_stored_the_oldest_goes_first()
    {
        var store = Store(maxStored: 2);
        store.Add(Stored("resp_1"));
        store.Add(Stored("resp_2"));
        store.Add(Stored("resp_3"));

        Assert.Null(store.Get("resp_1", owner: null));
        Assert.NotNull(store.Get("resp_2", owner: null));
        Assert.NotNull(store.Get("resp_3", owner: null));
    }

    [Fact]
    public void A_response_expires_after_the_ttl()
    {
        var store = Store(ttl: TimeSpan.FromMinutes(10));
        store.Add(Stored("resp_old"));
        _time.Advance(TimeSpan.FromMinutes(6));
        store.Add(Stored("resp_new"));
        _time.Advance(TimeSpan.FromMinutes(5));

        Assert.Null(store.Get("resp_old", owner: null));
        Assert.NotNull(store.Get("resp_new", owner: null));
    }

    [Fact]
    public void Only_the_owner_sees_or_deletes_a_response()
    {
        var store = Store();
        store.Add(Stored("resp_a", owner: "key-a"));

        Assert.Null(store.Get("resp_a", owner: "key-b"));
        Assert.Null(store.Get("resp_a", owner: null));
        Assert.False(store.Delete("resp_a", owner: "key-b"));
        Assert.NotNull(store.Get("resp_a", owner: "key-a"));
        Assert.True(store.Delete("resp_a", owner: "key-a"));
        Assert.Null(store.Get("resp_a", owner: "key-a"));
    }

    [Fact]
    public void Max_stored_zero_stores_nothing()
    {
        var store = Store(maxStored: 0);
        store.Add(Stored("resp_1"));

        Assert.Null(store.Get("resp_1", owner: null));
    }

    [Fact]
    public void Deleted_responses_leave_room_for_new_ones()
    {
        var store = Store(maxStored: 2);
        store.Add(Stored("resp_1"));
        store.Add(Stored("resp_2"));
        Assert.True(store.Delete("resp_1", owner: null));
        store.Add(Stored("resp_3"));

        Assert.NotNull(store.Get("resp_2", owner: null));
        Assert.NotNull(store.Get("resp_3", owner: null));
    }

    [Fact]
    public void An_expired_response_has_its_chain_forgotten_when_the_ttl_ends_with_no_request_coming()
    {
        var store = Store(ttl: TimeSpan.FromMinutes(10));
        store.Add(Stored("resp_1"));
        _time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.Empty(_engine.Evicted);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["responses:resp_1"], _engine.Evicted);
    }

    [Fact]
    public void A_chain_is_kept_while_a_continuation_in_it_is_stored()
    {
        var store = Store(ttl: TimeSpan.FromMinutes(10));
        store.Add(Stored("resp_1"));
        _time.Advance(TimeSpan.FromMinutes(6));
        store.Add(Stored("resp_2", chain: "resp_1"));
        _time.Advance(TimeSpan.FromMinutes(5));

        Assert.Null(store.Get("resp_1", owner: null));
        Assert.Empty(_engine.Evicted);
        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(["responses:resp_1"], _engine.Evicted);
    }

    [Fact]
    public void Deleting_the_last_response_of_a_chain_forgets_its_chain()
    {
        var store = Store();
        store.Add(Stored("resp_1"));
        store.Add(Stored("resp_2", chain: "resp_1"));
        store.Add(Stored("resp_3"));

        Assert.True(store.Delete("resp_1", owner: null));
        Assert.Empty(_engine.Evicted);
        Assert.True(store.Delete("resp_2", owner: null));
        Assert.Equal(["responses:resp_1"], _engine.Evicted);
    }

    [Fact]
    public void A_response_dropped_beyond_max_stored_forgets_its_chain()
    {
        var store = Store(maxStored: 1);
        store.Add(Stored("resp_1"));
        store.Add(Stored("resp_2"));

        Assert.Equal(["responses:resp_1"], _engine.Evicted);
    }

    [Fact]
    public void A_running_generation_keeps_its_chain_and_a_failed_one_forgets_it()
    {
        var store = Store(ttl: TimeSpan.FromMinutes(10));
        store.Add(Stored("resp_1"));
        var continuing = store.UseChain("responses:resp_1");
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Empty(_engine.Evicted);

        // The continuation failed: nothing was stored, so nothing holds the chain.
        continuing.Dispose();
        Assert.Equal(["responses:resp_1"], _engine.Evicted);

        using (store.UseChain("responses:resp_2"))
        {
            store.Add(Stored("resp_2"));
        }

        Assert.Equal(["responses:resp_1"], _engine.Evicted);
        store.Delete("resp_2", owner: null);
        Assert.Equal(["responses:resp_1", "responses:resp_2"], _engine.Evicted);
    }

    [Fact]
    public void At_shutdown_every_chain_is_forgotten()
    {
        var store = Store();
        store.Add(Stored("resp_1"));
        store.Add(Stored("resp_2", chain: "resp_1"));
        using var running = store.UseChain("responses:resp_3");

        store.ForgetAllChains();
        Assert.Equal(["responses:resp_1", "responses:resp_3"], _engine.Evicted.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_ttl_beyond_the_longest_timer_stores_and_expires_when_it_ends()
    {
        var ttl = TimeSpan.FromDays(90);
        var store = Store(ttl: ttl);
        store.Add(Stored("resp_1"));

        _time.Advance(ttl - TimeSpan.FromSeconds(1));
        Assert.NotNull(store.Get("resp_1", owner: null));
        Assert.Empty(_engine.Evicted);

        // No request comes: the timer, re-armed every 30 days, drops it on time.
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["responses:resp_1"], _engine.Evicted);
        Assert.Null(store.Get("resp_1", owner: null));
    }

    [Fact]
    public void A_response_lives_its_ttl_from_when_it_is_stored_in_the_order_stored()
    {
        var store = Store(ttl: TimeSpan.FromMinutes(10));

        // A long generation started first and is stored after a short one that started later.
        _time.Advance(TimeSpan.FromMinutes(1));
        store.Add(Stored("resp_short"));
        _time.Advance(TimeSpan.FromMinutes(2));
        var created = _time.GetUtcNow() - TimeSpan.FromMinutes(3);
        store.Add(Stored("resp_long", createdAt: created));

        Assert.Equal(created.ToUnixTimeSeconds(), store.Get("resp_long", owner: null)!.Response.CreatedAt);
        _time.Advance(TimeSpan.FromMinutes(8));
        Assert.Equal(["responses:resp_short"], _engine.Evicted);
        Assert.NotNull(store.Get("resp_long", owner: null));

        _time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(["responses:resp_short", "responses:resp_long"], _engine.Evicted);
        Assert.Null(store.Get("resp_long", owner: null));
    }

    [Fact]
    public void A_disposed_store_still_answers_and_arms_no_timer()
    {
        var store = Store(ttl: TimeSpan.FromMinutes(10));
        store.Add(Stored("resp_1"));
        store.Dispose();

        store.Add(Stored("resp_2"));
        Assert.NotNull(store.Get("resp_2", owner: null));
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Empty(_engine.Evicted);
    }

    private ResponseStore Store(int maxStored = 100, TimeSpan? ttl = null) =>
        new(Options.Create(new ResponsesOptions { MaxStored = maxStored, StoreTtl = ttl ?? TimeSpan.FromHours(1) }), _time, _engine);

    private StoredResponse Stored(string id, string? owner = null, string? chain = null, DateTimeOffset? createdAt = null)
    {
        var response = new ResponseShape(new CreateResponseRequest(), id, (createdAt ?? _time.GetUtcNow()).ToUnixTimeSeconds(), "model").InProgress();
        return new StoredResponse(response, [], "responses:" + (chain ?? id), owner);
    }

    /// <summary>The engine as the store sees it: only the sessions it is told to forget matter.</summary>
    private sealed class EvictionRecorder() : DelegatingTextGenerator(null!)
    {
        public List<string> Evicted { get; } = [];

        public override void EvictSession(string sessionKey) => Evicted.Add(sessionKey);
    }
}
