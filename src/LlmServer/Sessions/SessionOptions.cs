using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>Configuration section <c>Sessions</c>.</summary>
public sealed class SessionOptions
{
    public const string SectionName = "Sessions";

    public const string SqliteStore = "sqlite";

    public const string PostgresStore = "postgres";

    /// <summary>Where sessions live: <c>sqlite</c> (one server) or <c>postgres</c> (shared by replicas).</summary>
    public string Store { get; set; } = SqliteStore;

    /// <summary>The SQLite file; a relative path is taken from the working directory.</summary>
    public string Database { get; set; } = "data/sessions.db";

    /// <summary>
    /// For <c>sqlite</c>: how long a write waits for a lock another connection holds (another process on the file, a
    /// backup) before the request is refused with 503 <c>unavailable</c>.
    /// </summary>
    public int SqliteBusyTimeoutSeconds { get; set; } = 30;

    /// <summary>For <c>postgres</c>: the connection string, from <c>ConnectionStrings:Sessions</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// This server's name in turn leases; it must differ between replicas. Set it to a name that stays the same when
    /// the replica restarts (a pod's name), so a restarted server takes its own unfinished turns back at once.
    /// Default with <c>postgres</c>: <see cref="ProcessReplicaId"/>, unique to this process, so replicas never share a
    /// lease; a restart then leaves its old turns' leases to run out (<see cref="TurnLeaseSeconds"/>). With
    /// <c>sqlite</c> (one server's file): the machine name.
    /// </summary>
    public string ReplicaId { get; set; } = "";

    /// <summary>
    /// This process's own lease name: the machine name, the process id and a random part (two containers on one
    /// host can share both a hostname and process id 1).
    /// </summary>
    public static string ProcessReplicaId { get; } =
        $"{Environment.MachineName}-{Environment.ProcessId}-{System.Security.Cryptography.RandomNumberGenerator.GetHexString(8, lowercase: true)}";

    /// <summary>How long a turn holds its session's lease without a checkpoint renewing it (a stopped server's turn is taken over after this).</summary>
    public int TurnLeaseSeconds { get; set; } = 30;

    /// <summary>
    /// For <c>postgres</c>: how often the connection that listens for other replicas' stop requests is asked, while
    /// idle, whether it still answers (and how long it has to answer): a half-open socket never fails a wait, and a
    /// missed announcement would leave a stop undone.
    /// </summary>
    public int StopListenProbeSeconds { get; set; } = 15;

    /// <summary>
    /// For <c>postgres</c>: how often every turn running here is checked for a stop request anyway, in case an
    /// announcement was lost (a connection that failed between two probes).
    /// </summary>
    public int StopSweepSeconds { get; set; } = 30;

    /// <summary>How long a generation keeps running after its last listener went away, so a client can resume it.</summary>
    public int ResumeGraceSeconds { get; set; } = 30;

    /// <summary>Longest user message, in characters.</summary>
    public int MaxMessageLength { get; set; } = 32_768;

    /// <summary>Longest system prompt, in characters.</summary>
    public int MaxSystemPromptLength { get; set; } = 32_768;

    /// <summary>Longest title, in characters.</summary>
    public int MaxTitleLength { get; set; } = 200;

    /// <summary>Most tokens a turn generates when the session sets no limit; 0 leaves it to the scheduler.</summary>
    public int DefaultMaxTokens { get; set; } = 1024;

    /// <summary>
    /// Room the context window leaves for the answer when the turn has no token limit (at most half a slot).
    /// </summary>
    public int AnswerReserveTokens { get; set; } = 512;

    /// <summary>
    /// When the window must slide, it drops old turns until the prompt fills at most this fraction of the room
    /// (the slot less the answer's), so it moves every few turns rather than every turn.
    /// </summary>
    public double WindowLowWater { get; set; } = 0.75;

    /// <summary>A streaming answer is stored at least this often, so a crash loses at most this much of it.</summary>
    public int CheckpointIntervalMilliseconds { get; set; } = 1000;

    /// <summary>... or after this many new tokens, whichever comes first; 0 checkpoints by time only.</summary>
    public int CheckpointTokens { get; set; } = 64;

    public TimeSpan ResumeGrace => TimeSpan.FromSeconds(ResumeGraceSeconds);

    public TimeSpan StopListenProbe => TimeSpan.FromSeconds(StopListenProbeSeconds);

    public TimeSpan StopSweep => TimeSpan.FromSeconds(StopSweepSeconds);

    public TimeSpan CheckpointInterval => TimeSpan.FromMilliseconds(CheckpointIntervalMilliseconds);
}

/// <summary>Reports every problem of the <c>Sessions</c> section at once.</summary>
internal sealed class SessionOptionsValidator : IValidateOptions<SessionOptions>
{
    // A hub message is buffered whole, at up to 12 bytes a character escaped: a million characters is 12 MB.
    private const int MaxTextLength = 1_048_576;

    public ValidateOptionsResult Validate(string? name, SessionOptions options)
    {
        var errors = new List<string>();
        if (options.Store is not (SessionOptions.SqliteStore or SessionOptions.PostgresStore))
        {
            errors.Add($"Sessions:Store must be '{SessionOptions.SqliteStore}' or '{SessionOptions.PostgresStore}' (it is '{options.Store}').");
        }
        else if (options.Store == SessionOptions.PostgresStore && string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            errors.Add("Sessions:Store is postgres but ConnectionStrings:Sessions is empty.");
        }

        if (options.TurnLeaseSeconds is < 1 or > 3600)
        {
            errors.Add("Sessions:TurnLeaseSeconds must be between 1 and 3600.");
        }

        if (options.StopListenProbeSeconds is < 1 or > 3600)
        {
            errors.Add("Sessions:StopListenProbeSeconds must be between 1 and 3600.");
        }

        if (options.StopSweepSeconds is < 1 or > 3600)
        {
            errors.Add("Sessions:StopSweepSeconds must be between 1 and 3600.");
        }

        if (string.IsNullOrWhiteSpace(options.Database))
        {
            errors.Add("Sessions:Database must name the SQLite file (for example data/sessions.db).");
        }
        else if (options.Database.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
        {
            errors.Add($"Sessions:Database '{options.Database}' is not a valid path.");
        }

        if (options.SqliteBusyTimeoutSeconds is < 1 or > 3600)
        {
            errors.Add("Sessions:SqliteBusyTimeoutSeconds must be between 1 and 3600.");
        }

        if (options.ResumeGraceSeconds is < 0 or > 3600)
        {
            errors.Add("Sessions:ResumeGraceSeconds must be between 0 and 3600.");
        }

        if (options.MaxMessageLength is < 1 or > MaxTextLength)
        {
            errors.Add($"Sessions:MaxMessageLength must be 1 to {MaxTextLength}.");
        }

        if (options.MaxSystemPromptLength is < 0 or > MaxTextLength)
        {
            errors.Add($"Sessions:MaxSystemPromptLength must be 0 to {MaxTextLength}.");
        }

        if (options.MaxTitleLength is < 1 or > MaxTextLength)
        {
            errors.Add($"Sessions:MaxTitleLength must be 1 to {MaxTextLength}.");
        }

        if (options.DefaultMaxTokens < 0)
        {
            errors.Add("Sessions:DefaultMaxTokens must be 0 (the scheduler's default) or more.");
        }

        if (options.AnswerReserveTokens < 1)
        {
            errors.Add("Sessions:AnswerReserveTokens must be 1 or more.");
        }

        if (double.IsNaN(options.WindowLowWater) || options.WindowLowWater is <= 0 or > 1)
        {
            errors.Add("Sessions:WindowLowWater must be greater than 0 and at most 1 (a fraction of the slot, e.g. 0.75).");
        }

        if (options.CheckpointIntervalMilliseconds < 1)
        {
            errors.Add("Sessions:CheckpointIntervalMilliseconds must be 1 or more.");
        }

        if (options.CheckpointTokens < 0)
        {
            errors.Add("Sessions:CheckpointTokens must be 0 (by time only) or more.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
