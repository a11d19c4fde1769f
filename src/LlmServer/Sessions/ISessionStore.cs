namespace LlmServer.Sessions;

/// <summary>A session row as stored, without its messages.</summary>
/// <param name="TurnRunning">A turn holds the session's lease now, on this server or another sharing the store.</param>
internal sealed record StoredSession(
    string Id,
    string? Owner,
    string Title,
    string? SystemPrompt,
    SessionSettings Settings,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    int MessageCount,
    bool TurnRunning = false);

/// <summary>A session and its messages, read together so they agree.</summary>
internal sealed record StoredConversation(StoredSession Session, IReadOnlyList<SessionMessage> Messages);

/// <summary>
/// Where sessions live (SQLite for one server; a shared database for replicas). Every call is scoped by owner: a
/// session is only seen, changed or written by the owner it was created for (null: anonymous). Every write is one
/// transaction, so a reader sees a turn either whole or not at all.
/// </summary>
internal interface ISessionStore
{
    /// <summary>Where the data is, for the start-up log.</summary>
    string Location { get; }

    /// <summary>
    /// The database's own id (made with its schema; known after <see cref="InitializeAsync"/>): servers sharing the
    /// database share it. Session ids begin with it (<see cref="ReplicaProtocol.SessionStoreIds"/>).
    /// </summary>
    string StoreId { get; }

    /// <summary>Creates the schema or brings it up to date; refuses a schema newer than this server's.</summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    Task CreateAsync(StoredSession session, CancellationToken cancellationToken);

    /// <summary>The owner's sessions, most recently active first.</summary>
    Task<IReadOnlyList<StoredSession>> ListAsync(string? owner, CancellationToken cancellationToken);

    Task<StoredSession?> GetAsync(string? owner, string id, CancellationToken cancellationToken);

    /// <summary>A session and its messages in index order, read in one transaction.</summary>
    Task<StoredConversation?> GetConversationAsync(string? owner, string id, CancellationToken cancellationToken);

    /// <summary>Changes the given fields (null: unchanged; an empty system prompt clears it). Null when the session is gone.</summary>
    Task<StoredSession?> UpdateAsync(
        string? owner,
        string id,
        string? title,
        string? systemPrompt,
        SettingsChange? settings,
        DateTimeOffset now,
        CancellationToken cancellationToken);

    /// <summary>
    /// Deletes the session and its messages. False when it did not exist (for this owner); <c>busy</c> while a turn
    /// of it runs on another server.
    /// </summary>
    Task<bool> DeleteAsync(string? owner, string id, CancellationToken cancellationToken);

    /// <summary>
    /// Starts a turn, in one transaction: drops the messages from <paramref name="fromIndex"/> on, stores
    /// <paramref name="userMessage"/> there (when given), an empty unfinished assistant message after it (the answer's
    /// place, which its checkpoints then fill, with <paramref name="contextStart"/>, the window it is answered in) and
    /// touches the session. False when the session is gone.
    /// </summary>
    Task<bool> BeginTurnAsync(
        string? owner, string id, int fromIndex, SessionMessage? userMessage, DateTimeOffset now, int? contextStart, CancellationToken cancellationToken);

    /// <summary>
    /// Writes an assistant answer at its index, replacing what an earlier call wrote there: a checkpoint while it
    /// streams (finish reason null), then the finished answer. False when the session is gone.
    /// </summary>
    Task<bool> SaveAnswerAsync(string? owner, string id, SessionMessage answer, CancellationToken cancellationToken);

    /// <summary>
    /// Marks the answers a stopped server left unfinished (checkpointed, never finished) as <c>interrupted</c>.
    /// Called at start, before any generation runs; returns how many there were.
    /// </summary>
    Task<int> InterruptUnfinishedAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Asks the server that runs a turn of the session (another server sharing the store, whose lease holds) to
    /// stop it: recorded with the lease until the turn ends, and announced to that server where the store can.
    /// False when no other server's turn runs there now.
    /// </summary>
    Task<bool> RequestStopAsync(string? owner, string id, CancellationToken cancellationToken);

    /// <summary>True while a stop is asked of the turn of <paramref name="id"/> that this server runs.</summary>
    Task<bool> IsStopRequestedAsync(string id, CancellationToken cancellationToken);
}

/// <summary>New values for some of a session's settings: only the fields in <see cref="Given"/> change (a given null resets one).</summary>
internal sealed record SettingsChange(SessionSettings Values, SettingsFields Given);

/// <summary>The fields of <see cref="SessionSettings"/>.</summary>
[Flags]
internal enum SettingsFields
{
    None = 0,
    Temperature = 1,
    TopP = 2,
    MaxTokens = 4,
    Seed = 8,
    All = Temperature | TopP | MaxTokens | Seed,
}
