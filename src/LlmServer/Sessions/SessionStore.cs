using Microsoft.Data.Sqlite;
using static LlmServer.Sessions.SqliteDatabase;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>A session row as stored, without its messages.</summary>
internal sealed record StoredSession(
    string Id,
    string? Owner,
    string Title,
    string? SystemPrompt,
    SessionSettings Settings,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    int MessageCount);

/// <summary>
/// Sessions and their messages in SQLite (WAL). Every write is one transaction; the schema is created and migrated
/// here, its version kept in <c>schema_version</c>. Callers pass the owner so one key never sees another's sessions.
/// </summary>
internal sealed class SessionStore : IDisposable
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
    ];

    private const string SessionColumns =
        "s.id, s.owner, s.title, s.system_prompt, s.temperature, s.top_p, s.max_tokens, s.seed, s.created_at, s.updated_at, " +
        "(SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id)";

    private readonly SqliteDatabase _database;

    public SessionStore(IOptions<SessionOptions> options)
    {
        _database = new SqliteDatabase(options.Value.Database);
        DatabasePath = _database.Path;
    }

    public string DatabasePath { get; }

    public static int SchemaVersion => Migrations.Length;

    /// <summary>Creates the folder and the database, switches it to WAL and brings the schema up to date.</summary>
    public Task InitializeAsync(CancellationToken cancellationToken) =>
        _database.MigrateAsync("schema_version", Migrations, $"The sessions database '{DatabasePath}'", cancellationToken);

    public async Task CreateAsync(StoredSession session, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            """
            INSERT INTO sessions (id, owner, title, system_prompt, temperature, top_p, max_tokens, seed, created_at, updated_at)
            VALUES ($id, $owner, $title, $system, $temperature, $topP, $maxTokens, $seed, $created, $updated);
            """);
        command.Parameters.AddWithValue("$id", session.Id);
        command.Parameters.AddWithValue("$owner", (object?)session.Owner ?? DBNull.Value);
        command.Parameters.AddWithValue("$title", session.Title);
        command.Parameters.AddWithValue("$system", (object?)session.SystemPrompt ?? DBNull.Value);
        AddSettings(command, session.Settings);
        command.Parameters.AddWithValue("$created", session.CreatedAt.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$updated", session.UpdatedAt.ToUnixTimeMilliseconds());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The owner's sessions, most recently active first.</summary>
    public async Task<IReadOnlyList<StoredSession>> ListAsync(string? owner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            $"SELECT {SessionColumns} FROM sessions s WHERE s.owner IS $owner ORDER BY s.updated_at DESC, s.created_at DESC, s.id;");
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        var sessions = new List<StoredSession>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            sessions.Add(ReadSession(reader));
        }

        return sessions;
    }

    public async Task<StoredSession?> GetAsync(string? owner, string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await GetAsync(connection, null, owner, id, cancellationToken);
    }

    /// <summary>A session and its messages, read in one transaction so they agree.</summary>
    public async Task<(StoredSession Session, IReadOnlyList<SessionMessage> Messages)?> GetWithMessagesAsync(
        string? owner, string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = connection.BeginTransaction(deferred: true);
        var session = await GetAsync(connection, transaction, owner, id, cancellationToken);
        if (session is null)
        {
            return null;
        }

        await using var command = Command(
            connection,
            transaction,
            """
            SELECT idx, role, content, created_at, prompt_tokens, cached_tokens, completion_tokens, finish_reason
            FROM messages WHERE session_id = $id ORDER BY idx;
            """);
        command.Parameters.AddWithValue("$id", id);
        var messages = new List<SessionMessage>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                messages.Add(new SessionMessage(
                    reader.GetInt32(0),
                    reader.GetString(1),
                    reader.GetString(2),
                    FromUnixMs(reader.GetInt64(3)),
                    NullableInt(reader, 4),
                    NullableInt(reader, 5),
                    NullableInt(reader, 6),
                    reader.IsDBNull(7) ? null : reader.GetString(7)));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return (session, messages);
    }

    /// <summary>Changes the given fields (null: unchanged; an empty system prompt clears it). Null when the session is gone.</summary>
    public async Task<StoredSession?> UpdateAsync(
        string? owner,
        string id,
        string? title,
        string? systemPrompt,
        SessionSettings? settings,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        await using var command = Command(
            connection,
            transaction,
            """
            UPDATE sessions SET
                title = COALESCE($title, title),
                system_prompt = CASE WHEN $setSystem THEN $system ELSE system_prompt END,
                temperature = CASE WHEN $setSettings THEN $temperature ELSE temperature END,
                top_p = CASE WHEN $setSettings THEN $topP ELSE top_p END,
                max_tokens = CASE WHEN $setSettings THEN $maxTokens ELSE max_tokens END,
                seed = CASE WHEN $setSettings THEN $seed ELSE seed END,
                updated_at = $updated
            WHERE id = $id AND owner IS $owner;
            """);
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        command.Parameters.AddWithValue("$title", (object?)title ?? DBNull.Value);
        command.Parameters.AddWithValue("$setSystem", systemPrompt is not null);
        command.Parameters.AddWithValue("$system", string.IsNullOrEmpty(systemPrompt) ? DBNull.Value : systemPrompt);
        command.Parameters.AddWithValue("$setSettings", settings is not null);
        AddSettings(command, settings ?? new SessionSettings());
        command.Parameters.AddWithValue("$updated", now.ToUnixTimeMilliseconds());
        if (await command.ExecuteNonQueryAsync(cancellationToken) == 0)
        {
            return null;
        }

        var updated = await GetAsync(connection, transaction, owner, id, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return updated;
    }

    /// <summary>Deletes the session and its messages. False when it did not exist (for this owner).</summary>
    public async Task<bool> DeleteAsync(string? owner, string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "DELETE FROM sessions WHERE id = $id AND owner IS $owner;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>
    /// In one transaction: drops the messages from <paramref name="fromIndex"/> on, appends <paramref name="append"/>
    /// (its index must be <paramref name="fromIndex"/>), and touches the session. False when the session is gone.
    /// </summary>
    public async Task<bool> ReplaceTailAsync(
        string id, int fromIndex, SessionMessage? append, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        if (!await TouchAsync(connection, transaction, id, now, cancellationToken))
        {
            return false;
        }

        await using (var delete = Command(connection, transaction, "DELETE FROM messages WHERE session_id = $id AND idx >= $from;"))
        {
            delete.Parameters.AddWithValue("$id", id);
            delete.Parameters.AddWithValue("$from", fromIndex);
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        if (append is not null)
        {
            await InsertMessageAsync(connection, transaction, id, append, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    /// <summary>Appends a message at the end of the conversation. False when the session is gone.</summary>
    public async Task<bool> AppendAsync(string id, SessionMessage message, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        if (!await TouchAsync(connection, transaction, id, now, cancellationToken))
        {
            return false;
        }

        await InsertMessageAsync(connection, transaction, id, message, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public void Dispose()
    {
        // Pooled connections keep the file (and its WAL) open; let them go with the store.
        using var connection = new SqliteConnection(_database.ConnectionString);
        SqliteConnection.ClearPool(connection);
    }

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => _database.OpenAsync(cancellationToken);

    private static async Task<StoredSession?> GetAsync(
        SqliteConnection connection, SqliteTransaction? transaction, string? owner, string id, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, $"SELECT {SessionColumns} FROM sessions s WHERE s.id = $id AND s.owner IS $owner;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadSession(reader) : null;
    }

    private static async Task<bool> TouchAsync(
        SqliteConnection connection, SqliteTransaction transaction, string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, "UPDATE sessions SET updated_at = $updated WHERE id = $id;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$updated", now.ToUnixTimeMilliseconds());
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    private static async Task InsertMessageAsync(
        SqliteConnection connection, SqliteTransaction transaction, string id, SessionMessage message, CancellationToken cancellationToken)
    {
        await using var command = Command(
            connection,
            transaction,
            """
            INSERT INTO messages (session_id, idx, role, content, created_at, prompt_tokens, cached_tokens, completion_tokens, finish_reason)
            VALUES ($id, $idx, $role, $content, $created, $prompt, $cached, $completion, $finish);
            """);
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$idx", message.Index);
        command.Parameters.AddWithValue("$role", message.Role);
        command.Parameters.AddWithValue("$content", message.Content);
        command.Parameters.AddWithValue("$created", message.CreatedAt.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$prompt", (object?)message.PromptTokens ?? DBNull.Value);
        command.Parameters.AddWithValue("$cached", (object?)message.CachedTokens ?? DBNull.Value);
        command.Parameters.AddWithValue("$completion", (object?)message.CompletionTokens ?? DBNull.Value);
        command.Parameters.AddWithValue("$finish", (object?)message.FinishReason ?? DBNull.Value);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void AddSettings(SqliteCommand command, SessionSettings settings)
    {
        command.Parameters.AddWithValue("$temperature", (object?)settings.Temperature ?? DBNull.Value);
        command.Parameters.AddWithValue("$topP", (object?)settings.TopP ?? DBNull.Value);
        command.Parameters.AddWithValue("$maxTokens", (object?)settings.MaxTokens ?? DBNull.Value);
        command.Parameters.AddWithValue("$seed", (object?)settings.Seed ?? DBNull.Value);
    }

    private static StoredSession ReadSession(SqliteDataReader reader) => new(
        reader.GetString(0),
        reader.IsDBNull(1) ? null : reader.GetString(1),
        reader.GetString(2),
        reader.IsDBNull(3) ? null : reader.GetString(3),
        new SessionSettings(
            reader.IsDBNull(4) ? null : reader.GetDouble(4),
            reader.IsDBNull(5) ? null : reader.GetDouble(5),
            NullableInt(reader, 6),
            reader.IsDBNull(7) ? null : reader.GetInt64(7)),
        FromUnixMs(reader.GetInt64(8)),
        FromUnixMs(reader.GetInt64(9)),
        reader.GetInt32(10));

    private static int? NullableInt(SqliteDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt32(ordinal);

    private static DateTimeOffset FromUnixMs(long value) => DateTimeOffset.FromUnixTimeMilliseconds(value);
}
