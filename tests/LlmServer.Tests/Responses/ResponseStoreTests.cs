using LlmServer.Responses;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Tests.Responses;

/// <summary>The store behind <c>previous_response_id</c>: bounded in size and in time, one API key's responses its own.</summary>
public sealed class ResponseStoreTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

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

    private ResponseStore Store(int maxStored = 100, TimeSpan? ttl = null) =>
        new(Options.Create(new ResponsesOptions { MaxStored = maxStored, StoreTtl = ttl ?? TimeSpan.FromHours(1) }), _time);

    private StoredResponse Stored(string id, string? owner = null)
    {
        var response = new ResponseShape(new CreateResponseRequest(), id, _time.GetUtcNow().ToUnixTimeSeconds(), "model").InProgress();
        return new StoredResponse(response, [], "responses:" + id, owner, _time.GetUtcNow());
    }
}
