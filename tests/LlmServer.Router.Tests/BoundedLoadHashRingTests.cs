using LlmServer.Router.Routing;

namespace LlmServer.Router.Tests;

public sealed class BoundedLoadHashRingTests
{
    private static readonly string[] Replicas = ["http://127.0.0.1:5001", "http://127.0.0.1:5002", "http://127.0.0.1:5003"];

    [Fact]
    public void A_key_goes_to_the_same_replica_every_time_while_loads_are_even()
    {
        var ring = new BoundedLoadHashRing(Replicas);
        for (var i = 0; i < 200; i++)
        {
            var key = $"user:{i}";
            var first = ring.Pick(key, _ => 0, 1.25, strict: false);
            Assert.Equal(first, ring.Pick(key, _ => 0, 1.25, strict: false));
            Assert.Equal(first, new BoundedLoadHashRing(Replicas.Reverse()).Pick(key, _ => 0, 1.25, strict: false));
        }
    }

    [Fact]
    public void Keys_spread_over_every_replica()
    {
        var ring = new BoundedLoadHashRing(Replicas);
        var counts = Enumerable.Range(0, 3000).GroupBy(i => ring.Pick($"conversation:{i}", _ => 0, 1.25, strict: false)).ToDictionary(g => g.Key!, g => g.Count());
        Assert.Equal(3, counts.Count);
        Assert.All(counts.Values, c => Assert.InRange(c, 700, 1300));
    }

    [Fact]
    public void Removing_a_replica_moves_only_the_keys_it_held()
    {
        var full = new BoundedLoadHashRing(Replicas);
        var smaller = new BoundedLoadHashRing(Replicas.Take(2));
        for (var i = 0; i < 1000; i++)
        {
            var key = $"session:{i}";
            var before = full.Pick(key, _ => 0, 1.25, strict: false);
            if (before != Replicas[2])
            {
                Assert.Equal(before, smaller.Pick(key, _ => 0, 1.25, strict: false));
            }
        }
    }

    [Fact]
    public void A_replica_over_the_load_bound_passes_its_keys_to_the_next_one_on_the_ring()
    {
        var ring = new BoundedLoadHashRing(Replicas);
        var key = "user:hot";
        var home = ring.Pick(key, _ => 0, 1.25, strict: false)!;

        // Its replica runs 10 requests, the others none: the bound is ceil(1.25 * 11 / 3) = 5.
        var spilled = ring.Pick(key, r => r == home ? 10 : 0, 1.25, strict: false);
        Assert.NotNull(spilled);
        Assert.NotEqual(home, spilled);

        // Within the bound it stays home: with every replica running one request the bound is ceil(1.25 * 4 / 3) = 2.
        Assert.Equal(home, ring.Pick(key, _ => 1, 1.25, strict: false));
    }

    [Fact]
    public void Below_the_minimum_spill_load_a_key_stays_home_however_uneven_the_loads()
    {
        var ring = new BoundedLoadHashRing(Replicas);
        var home = ring.Pick("user:warm", _ => 0, 1.25, strict: false)!;
        Assert.Equal(home, ring.Pick("user:warm", r => r == home ? 3 : 0, 1.25, strict: false, minimumBound: 4));
        Assert.NotEqual(home, ring.Pick("user:warm", r => r == home ? 4 : 0, 1.25, strict: false, minimumBound: 4));
    }

    [Fact]
    public void A_strict_key_stays_home_whatever_the_load()
    {
        var ring = new BoundedLoadHashRing(Replicas);
        var home = ring.Pick("owner:a", _ => 0, 1.25, strict: true);
        Assert.Equal(home, ring.Pick("owner:a", r => r == home ? 1000 : 0, 1.25, strict: true));
    }

    [Fact]
    public void An_empty_ring_picks_nothing() =>
        Assert.Null(new BoundedLoadHashRing([]).Pick("k", _ => 0, 1.25, strict: false));
}
