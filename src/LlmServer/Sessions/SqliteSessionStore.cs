using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>
/// Sessions and their messages in SQLite (WAL). Every write is one transaction; the schema is created and migrated
/// here, its version kept in <c>schema_version</c>. Callers pass the owner so one key never sees another's sessions.
/// </summary>
internal sealed class SqliteSessionStore : ISessionStore, IDisposable
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
    ];

    private const string SessionColumns =
        "s.id, s.owner, s.title, s.system_prompt, s.temperature, s.top_p, s.max_tokens, s.seed, s.created_at, s.updated_at, " +
        "(SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id)";

    private readonly string _connectionString;

    public SqliteSessionStore(IOptions<SessionOptions> options)
    {
        DatabasePath = Path.GetFullPath(options.Value.Database);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = DatabasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            ForeignKeys = true,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    public string DatabasePath { get; }

    public string Location => DatabasePath;

    public static int SchemaVersion => Migrations.Length;

    /// <summary>Creates the folder and the database, switches it to WAL and brings the schema up to date.</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        var folder = Path.GetDirectoryName(DatabasePath);
        if (!string.IsNullOrEmpty(folder))
        {
            Directory.CreateDirectory(folder);
        }

        await using var connection = await OpenAsync(cancellationToken);
        await ExecuteAsync(connection, null, "PRAGMA journal_mode = WAL;", cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);", cancellationToken);
        await using (var read = Command(connection, transaction, "SELECT MAX(version) FROM schema_version;"))
        {
            var current = await read.ExecuteScalarAsync(cancellationToken) is long v ? (int)v : 0;
            if (current > Migrations.Length)
            {
                throw new InvalidOperationException(
                    $"The sessions database '{DatabasePath}' has schema version {current}, newer than this server's {Migrations.Length}.");
            }

            for (var version = current; version < Migrations.Length; version++)
            {
                await ExecuteAsync(connection, transaction, Migrations[version], cancellationToken);
            }

            await ExecuteAsync(connection, transaction, "DELETE FROM schema_version;", cancellationToken);
            await using var write = Command(connection, transaction, "INSERT INTO schema_version (version) VALUES ($v);");
            write.Parameters.AddWithValue("$v", Migrations.Length);
            await write.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

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

    public async Task<StoredConversation?> GetConversationAsync(string? owner, string id, CancellationToken cancellationToken)
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
            SELECT idx, role, content, created_at, prompt_tokens, cached_tokens, completion_tokens, finish_reason, context_start
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
                    reader.IsDBNull(7) ? null : reader.GetString(7),
                    NullableInt(reader, 8)));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return new StoredConversation(session, messages);
    }

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

    public async Task<bool> DeleteAsync(string? owner, string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "DELETE FROM sessions WHERE id = $id AND owner IS $owner;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task<bool> BeginTurnAsync(
        string? owner, string id, int fromIndex, SessionMessage? userMessage, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        if (!await TouchAsync(connection, transaction, owner, id, now, cancellationToken))
        {
            return false;
        }

        await using (var delete = Command(connection, transaction, "DELETE FROM messages WHERE session_id = $id AND idx >= $from;"))
        {
            delete.Parameters.AddWithValue("$id", id);
            delete.Parameters.AddWithValue("$from", fromIndex);
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        if (userMessage is not null)
        {
            await WriteMessageAsync(connection, transaction, id, userMessage, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public async Task<bool> SaveAnswerAsync(string? owner, string id, SessionMessage answer, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        if (!await TouchAsync(connection, transaction, owner, id, answer.CreatedAt, cancellationToken))
        {
            return false;
        }

        await WriteMessageAsync(connection, transaction, id, answer, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public async Task<int> InterruptUnfinishedAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            "UPDATE messages SET finish_reason = 'interrupted' WHERE role = 'assistant' AND finish_reason IS NULL;");
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public void Dispose()
    {
        // Pooled connections keep the file (and its WAL) open; let them go with the store.
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

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
        SqliteConnection connection, SqliteTransaction transaction, string? owner, string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, "UPDATE sessions SET updated_at = $updated WHERE id = $id AND owner IS $owner;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        command.Parameters.AddWithValue("$updated", now.ToUnixTimeMilliseconds());
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>Inserts the message, or replaces the one at its index (an answer's checkpoint).</summary>
    private static async Task WriteMessageAsync(
        SqliteConnection connection, SqliteTransaction transaction, string id, SessionMessage message, CancellationToken cancellationToken)
    {
        await using var command = Command(
            connection,
            transaction,
            """
            INSERT INTO messages (session_id, idx, role, content, created_at, prompt_tokens, cached_tokens, completion_tokens, finish_reason, context_start)
            VALUES ($id, $idx, $role, $content, $created, $prompt, $cached, $completion, $finish, $contextStart)
            ON CONFLICT (session_id, idx) DO UPDATE SET
                role = excluded.role,
                content = excluded.content,
                created_at = excluded.created_at,
                prompt_tokens = excluded.prompt_tokens,
                cached_tokens = excluded.cached_tokens,
                completion_tokens = excluded.completion_tokens,
                finish_reason = excluded.finish_reason,
                context_start = excluded.context_start;
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
        command.Parameters.AddWithValue("$contextStart", (object?)message.ContextStart ?? DBNull.Value);
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

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    private static async Task ExecuteAsync(SqliteConnection connection, SqliteTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
