namespace LlmServer.Router.Configuration;

/// <summary>The router's settings (section <c>Router</c>); replicas may change at run time through configuration reloads.</summary>
public sealed class RouterOptions
{
    public const string SectionName = "Router";

    /// <summary>Base addresses of the LlmServer replicas, e.g. <c>http://127.0.0.1:5001</c>.</summary>
    public IList<string> Replicas { get; } = [];

    /// <summary>How often each replica's <c>/health/ready</c> is probed to take it out or put it back.</summary>
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a health probe may take before it counts as a failure.</summary>
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How often each replica's load (running and waiting requests) is read.</summary>
    public TimeSpan LoadPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Bounded-load factor of the consistent hash: a replica takes a key's request while its load stays within
    /// this factor of the mean load; a hot key spills to the next replica on the ring instead of sinking one.
    /// </summary>
    public double LoadFactor { get; set; } = 1.25;

    /// <summary>
    /// The load below which a replica keeps its keys whatever the others run: spilling a conversation away from its
    /// KV cache costs a full prefill, which only pays once its replica is really busy.
    /// </summary>
    public int MinimumSpillLoad { get; set; } = 4;

    /// <summary>How many sessions the router remembers the replica of (least recently used are forgotten).</summary>
    public int SessionMapCapacity { get; set; } = 100_000;

    /// <summary>The longest a proxied request may stay silent (a queued stream sends keep-alives more often).</summary>
    public TimeSpan ActivityTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How long the merged <c>GET /api/sessions</c> waits for the replicas' lists (headers and body): a replica that
    /// misses it counts as unavailable, so one stalled replica cannot hold the list for <see cref="ActivityTimeout"/>.
    /// </summary>
    public TimeSpan SessionListTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The largest list (or refusal) one replica may answer for the merged <c>GET /api/sessions</c>: each answer is held
    /// until the merged list is written, in a buffer that doubles as the answer comes, up to this size (while it grows,
    /// the old buffer and the new one for a moment: under twice this size).
    /// </summary>
    public int SessionListMaxBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>The <c>Retry-After</c> the router sends with its 503 when no replica is healthy.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(2);
}
