using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>
/// Sessions in a SQLite file (WAL): the single server's default. Its schema versions match the PostgreSQL store's
/// step for step; the column types are SQLite's.
/// </summary>
internal sealed class SqliteSessionStore : SqlSessionStore, IDisposable
{
    // Each entry moves the schema from version i to i + 1; append, never edit.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE sessions (
            id TEXT NOT NULL PRIMARY KEY,
            owner TEXT NULL,
            title TEXT NOT NULL,
            system_prompt TEXT NULL,
            temperature REAL NULL,
            top_p REAL NULL,
            max_tokens INTEGER NULL,
            seed INTEGER NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX ix_sessions_owner_updated ON sessions (owner, updated_at DESC);
        CREATE TABLE messages (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            prompt_tokens INTEGER NULL,
            cached_tokens INTEGER NULL,
            completion_tokens INTEGER NULL,
            finish_reason TEXT NULL,
            PRIMARY KEY (session_id, idx)
        ) WITHOUT ROWID;
        """,
        // The first message the model saw for an answer (its context window's start).
        "ALTER TABLE messages ADD COLUMN context_start INTEGER NULL;",
        // The turn lease: which server runs a turn of the session, and until when unless it renews.
        "ALTER TABLE sessions ADD COLUMN lease_holder TEXT NULL; ALTER TABLE sessions ADD COLUMN lease_expires_at INTEGER NULL;",
        // The database's own id, which begins its session ids (the router finds a session's replica by it), and a
        // stop asked of a turn that another server runs.
        """
        CREATE TABLE store_info (store_id TEXT NOT NULL);
        INSERT INTO store_info (store_id) VALUES (lower(hex(randomblob(6))));
        ALTER TABLE sessions ADD COLUMN stop_requested INTEGER NULL;
        """,
        // A reasoning model's thinking, kept apart from the answer's text.
        "ALTER TABLE messages ADD COLUMN reasoning TEXT NULL;",
        // How many of an answer's completion tokens went to its thinking.
        "ALTER TABLE messages ADD COLUMN reasoning_tokens INTEGER NULL;",
    ];

    private readonly SqliteDatabase _database;

    public SqliteSessionStore(IOptions<SessionOptions> options)
        : this(options, TimeProvider.System)
    {
    }

    [ActivatorUtilitiesConstructor]
    public SqliteSessionStore(IOptions<SessionOptions> options, TimeProvider timeProvider)
        : base(options.Value, timeProvider)
    {
        _database = new SqliteDatabase(options.Value.Database, options.Value.SqliteBusyTimeoutSeconds);
        DatabasePath = _database.Path;
    }

    public string DatabasePath { get; }

    public override string Location => DatabasePath;

    public static int SchemaVersion => Migrations.Length;

    protected override string NullSafeEquals => "IS";

    protected override string LockRow => string.Empty;

    /// <summary>Creates the folder and the database, switches it to WAL and brings the schema up to date.</summary>
    protected override Task MigrateAsync(CancellationToken cancellationToken) =>
        _database.MigrateAsync("schema_version", Migrations, $"The sessions database '{DatabasePath}'", cancellationToken);

    public void Dispose()
    {
        // Pooled connections keep the file (and its WAL) open; let them go with the store.
        using var connection = new SqliteConnection(_database.ConnectionString);
        SqliteConnection.ClearPool(connection);
    }

    protected override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await _database.OpenAsync(cancellationToken);

    protected override Task<DbTransaction> BeginReadAsync(DbConnection connection, CancellationToken cancellationToken) =>
        Task.FromResult<DbTransaction>(((SqliteConnection)connection).BeginTransaction(deferred: true));
}
