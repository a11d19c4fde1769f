using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace LlmServer.Router.Routing;

/// <summary>
/// Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam): each replica owns many points of a
/// ring; a key goes to the first replica clockwise from its hash whose load stays within <c>factor</c> times the
/// mean. A key keeps its replica while loads are even, and only the keys of a replica that leaves move.
/// </summary>
internal sealed class BoundedLoadHashRing
{
    private const int PointsPerReplica = 128;

    private readonly ulong[] _points;
    private readonly string[] _owners;

    public BoundedLoadHashRing(IEnumerable<string> replicas)
    {
        var points = new List<(ulong Point, string Owner)>();
        foreach (var replica in replicas.Distinct(StringComparer.Ordinal))
        {
            for (var i = 0; i < PointsPerReplica; i++)
            {
                points.Add((Hash($"{replica}#{i}"), replica));
            }
        }

        points.Sort((a, b) => a.Point != b.Point ? a.Point.CompareTo(b.Point) : string.CompareOrdinal(a.Owner, b.Owner));
        _points = [.. points.Select(p => p.Point)];
        _owners = [.. points.Select(p => p.Owner)];
    }

    /// <summary>
    /// The replica for <paramref name="key"/>: the first on the ring under the load bound (never below
    /// <paramref name="minimumBound"/>: a lightly loaded cluster keeps every key home, where its KV cache is), or with
    /// <paramref name="strict"/> the first on the ring whatever its load. Null for an empty ring.
    /// </summary>
    public string? Pick(string key, Func<string, int> load, double factor, bool strict, int minimumBound = 0)
    {
        if (_points.Length == 0)
        {
            return null;
        }

        var start = Array.BinarySearch(_points, Hash(key));
        if (start < 0)
        {
            start = ~start;
        }

        if (strict)
        {
            return _owners[start % _points.Length];
        }

        var replicas = _owners.Distinct(StringComparer.Ordinal).ToArray();
        var total = replicas.Sum(load);
        var bound = Math.Max(minimumBound, (int)Math.Ceiling(factor * (total + 1) / replicas.Length));
        for (var i = 0; i < _points.Length; i++)
        {
            var owner = _owners[(start + i) % _points.Length];
            if (load(owner) + 1 <= bound)
            {
                return owner;
            }
        }

        // Unreachable while factor >= 1 (the least loaded replica is always under the bound); kept total for safety.
        return replicas.MinBy(load);
    }

    internal static ulong Hash(string text) =>
        BinaryPrimitives.ReadUInt64BigEndian(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
