using System.Text.Json;
using LlmServer.Sessions;
using Microsoft.Data.Sqlite;
using static LlmServer.Sessions.SqliteDatabase;
using Microsoft.Extensions.Options;

namespace LlmServer.Batches;

/// <summary>
/// Files and batches in SQLite, in the sessions database file with their own tables and their own schema version
/// (<c>batch_schema_version</c>). Each finished request line is one row, so a restart keeps every done line and
/// reruns only the rest. Callers pass the owner: one key never sees another's files or batches.
/// </summary>
internal sealed class BatchStore(IOptions<LlmServer.Sessions.SessionOptions> sessions)
{
    // Each entry moves the schema from version i to i + 1; append, never edit.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE batch_files (
            id TEXT NOT NULL PRIMARY KEY,
            owner TEXT NULL,
            filename TEXT NOT NULL,
            purpose TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            content BLOB NOT NULL
        );
        CREATE TABLE batches (
            id TEXT NOT NULL PRIMARY KEY,
            owner TEXT NULL,
            endpoint TEXT NOT NULL,
            input_file_id TEXT NOT NULL,
            completion_window TEXT NOT NULL,
            status TEXT NOT NULL,
            total INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            in_progress_at INTEGER NULL,
            finalizing_at INTEGER NULL,
            completed_at INTEGER NULL,
            failed_at INTEGER NULL,
            expired_at INTEGER NULL,
            cancelling_at INTEGER NULL,
            cancelled_at INTEGER NULL,
            output_file_id TEXT NULL,
            error_file_id TEXT NULL,
            errors TEXT NULL,
            metadata TEXT NULL
        );
        CREATE INDEX ix_batches_owner_created ON batches (owner, created_at DESC);
        CREATE TABLE batch_lines (
            batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            status_code INTEGER NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (batch_id, idx)
        ) WITHOUT ROWID;
        """,
        // The batch keeps its own copy of the input while it runs: deleting the file must not break it.
        "ALTER TABLE batches ADD COLUMN input BLOB NULL;",

        // Batches still running from before the copy was kept take it from their file now, while it exists.
        """
        UPDATE batches SET input = (SELECT f.content FROM batch_files f WHERE f.id = batches.input_file_id AND f.owner IS batches.owner)
        WHERE input IS NULL AND status IN ('validating', 'in_progress', 'finalizing', 'cancelling');
        """,
    ];

    /// <summary>Statuses a batch is still worked on in; a restart resumes these.</summary>
    public static readonly string[] ActiveStatuses = ["validating", "in_progress", "finalizing", "cancelling"];

    private static readonly string[] FinalStatuses = ["completed", "failed", "expired", "cancelled"];

    private const string BatchColumns =
        "b.id, b.endpoint, b.input_file_id, b.completion_window, b.status, b.total, b.created_at, b.expires_at, b.in_progress_at, " +
        "b.finalizing_at, b.completed_at, b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at, b.output_file_id, b.error_file_id, " +
        "b.errors, b.metadata, b.owner, " +
        "(SELECT COUNT(*) FROM batch_lines l WHERE l.batch_id = b.id AND l.status_code < 400), " +
        "(SELECT COUNT(*) FROM batch_lines l WHERE l.batch_id = b.id AND l.status_code >= 400)";

    private readonly SqliteDatabase _database = new(sessions.Value.Database, sessions.Value.SqliteBusyTimeoutSeconds);

    public Task InitializeAsync(CancellationToken cancellationToken) =>
        _database.MigrateAsync("batch_schema_version", Migrations, $"The batch tables of '{sessions.Value.Database}'", cancellationToken);

    public async Task AddFileAsync(FileObject file, string? owner, byte[] content, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "INSERT INTO batch_files (id, owner, filename, purpose, bytes, created_at, content) VALUES ($id, $owner, $name, $purpose, $bytes, $created, $content);");
        command.Parameters.AddWithValue("$id", file.Id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        command.Parameters.AddWithValue("$name", file.Filename);
        command.Parameters.AddWithValue("$purpose", file.Purpose);
        command.Parameters.AddWithValue("$bytes", file.Bytes);
        command.Parameters.AddWithValue("$created", file.CreatedAt);
        command.Parameters.AddWithValue("$content", content);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<FileObject>> ListFilesAsync(string? owner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT id, bytes, created_at, filename, purpose FROM batch_files WHERE owner IS $owner ORDER BY created_at DESC, id;");
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var files = new List<FileObject>();
        while (await reader.ReadAsync(cancellationToken))
        {
            files.Add(ReadFile(reader));
        }

        return files;
    }

    public async Task<FileObject?> GetFileAsync(string id, string? owner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT id, bytes, created_at, filename, purpose FROM batch_files WHERE id = $id AND owner IS $owner;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadFile(reader) : null;
    }

    public async Task<byte[]?> GetFileContentAsync(string id, string? owner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT content FROM batch_files WHERE id = $id AND owner IS $owner;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        return await command.ExecuteScalarAsync(cancellationToken) as byte[];
    }

    public async Task<bool> DeleteFileAsync(string id, string? owner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "DELETE FROM batch_files WHERE id = $id AND owner IS $owner;");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>
    /// Stores a new batch with a copy of its input file's content, taken in the same statement, so the batch runs
    /// (and resumes after a restart) whatever later happens to the file. False when the owner has no such file.
    /// </summary>
    public async Task<bool> CreateBatchAsync(BatchObject batch, string? owner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            """
            INSERT INTO batches (id, owner, endpoint, input_file_id, completion_window, status, created_at, expires_at, metadata, input)
            SELECT $id, $owner, $endpoint, $input, $window, $status, $created, $expires, $metadata, f.content
            FROM batch_files f WHERE f.id = $input AND f.owner IS $owner;
            """);
        command.Parameters.AddWithValue("$id", batch.Id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        command.Parameters.AddWithValue("$endpoint", batch.Endpoint);
        command.Parameters.AddWithValue("$input", batch.InputFileId);
        command.Parameters.AddWithValue("$window", batch.CompletionWindow);
        command.Parameters.AddWithValue("$status", batch.Status);
        command.Parameters.AddWithValue("$created", batch.CreatedAt);
        command.Parameters.AddWithValue("$expires", batch.ExpiresAt);
        command.Parameters.AddWithValue("$metadata", batch.Metadata is null ? DBNull.Value : JsonSerializer.Serialize(batch.Metadata, BatchJson.Context.DictionaryStringString));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>The batch's own copy of its input; null for one whose file was gone before batches kept a copy.</summary>
    public async Task<byte[]?> GetBatchInputAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            "SELECT input FROM batches WHERE id = $id;");
        command.Parameters.AddWithValue("$id", id);
        return await command.ExecuteScalarAsync(cancellationToken) as byte[];
    }

    /// <summary>A batch with its owner; <paramref name="owner"/> null with <paramref name="anyOwner"/> reads it for the runner.</summary>
    public async Task<(BatchObject Batch, string? Owner)?> GetBatchAsync(string id, string? owner, bool anyOwner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"SELECT {BatchColumns} FROM batches b WHERE b.id = $id AND ($any OR b.owner IS $owner);");
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        command.Parameters.AddWithValue("$any", anyOwner);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (ReadBatch(reader), reader.IsDBNull(19) ? null : reader.GetString(19)) : null;
    }

    /// <summary>The owner's batches, newest first, after the batch <paramref name="after"/> when given.</summary>
    public async Task<IReadOnlyList<BatchObject>> ListBatchesAsync(string? owner, string? after, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            $"""
            SELECT {BatchColumns} FROM batches b
            WHERE b.owner IS $owner AND ($after IS NULL OR (b.created_at, b.id) < (SELECT created_at, id FROM batches WHERE id = $after))
            ORDER BY b.created_at DESC, b.id DESC LIMIT $limit;
            """);
        command.Parameters.AddWithValue("$owner", (object?)owner ?? DBNull.Value);
        command.Parameters.AddWithValue("$after", (object?)after ?? DBNull.Value);
        command.Parameters.AddWithValue("$limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var batches = new List<BatchObject>();
        while (await reader.ReadAsync(cancellationToken))
        {
            batches.Add(ReadBatch(reader));
        }

        return batches;
    }

    /// <summary>Ids of the batches still being worked on, oldest first.</summary>
    public async Task<IReadOnlyList<string>> ActiveBatchIdsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT id FROM batches WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling') ORDER BY created_at, id;");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var ids = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    /// <summary>
    /// Moves a batch to <paramref name="status"/>, stamping its time column, only from one of <paramref name="from"/>
    /// (so a cancel and the runner never overwrite each other). Returns false when the batch was elsewhere.
    /// </summary>
    public async Task<bool> MoveAsync(string id, string status, long now, IReadOnlyList<string> from, CancellationToken cancellationToken, BatchTransition? extra = null)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var statuses = string.Join(", ", from.Select((_, i) => "$from" + i));
        await using var command = Command(
            connection,
            null,
            $"""
            UPDATE batches SET status = $status, {status}_at = $now,
                total = COALESCE($total, total), output_file_id = COALESCE($output, output_file_id),
                error_file_id = COALESCE($error, error_file_id), errors = COALESCE($errors, errors),
                input = CASE WHEN $final THEN NULL ELSE input END
            WHERE id = $id AND status IN ({statuses});
            """);
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$status", status);
        command.Parameters.AddWithValue("$now", now);
        // An ended batch never reads its input again: its copy is dropped.
        command.Parameters.AddWithValue("$final", FinalStatuses.Contains(status));
        command.Parameters.AddWithValue("$total", (object?)extra?.Total ?? DBNull.Value);
        command.Parameters.AddWithValue("$output", (object?)extra?.OutputFileId ?? DBNull.Value);
        command.Parameters.AddWithValue("$error", (object?)extra?.ErrorFileId ?? DBNull.Value);
        command.Parameters.AddWithValue("$errors", extra?.Errors is { } errors ? JsonSerializer.Serialize(errors, BatchJson.Context.BatchErrors) : DBNull.Value);
        for (var i = 0; i < from.Count; i++)
        {
            command.Parameters.AddWithValue("$from" + i, from[i]);
        }

        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public async Task<HashSet<int>> DoneLinesAsync(string batchId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT idx FROM batch_lines WHERE batch_id = $id;");
        command.Parameters.AddWithValue("$id", batchId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var done = new HashSet<int>();
        while (await reader.ReadAsync(cancellationToken))
        {
            done.Add(reader.GetInt32(0));
        }

        return done;
    }

    public async Task AddLineAsync(string batchId, int index, int statusCode, string result, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "INSERT OR REPLACE INTO batch_lines (batch_id, idx, status_code, result) VALUES ($id, $idx, $status, $result);");
        command.Parameters.AddWithValue("$id", batchId);
        command.Parameters.AddWithValue("$idx", index);
        command.Parameters.AddWithValue("$status", statusCode);
        command.Parameters.AddWithValue("$result", result);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The done lines in input order: their status codes and output-file lines.</summary>
    public async Task<IReadOnlyList<(int StatusCode, string Result)>> LinesAsync(string batchId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT status_code, result FROM batch_lines WHERE batch_id = $id ORDER BY idx;");
        command.Parameters.AddWithValue("$id", batchId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var lines = new List<(int, string)>();
        while (await reader.ReadAsync(cancellationToken))
        {
            lines.Add((reader.GetInt32(0), reader.GetString(1)));
        }

        return lines;
    }

    private static FileObject ReadFile(SqliteDataReader reader) =>
        new(reader.GetString(0), "file", reader.GetInt64(1), reader.GetInt64(2), reader.GetString(3), reader.GetString(4), "processed");

    private static BatchObject ReadBatch(SqliteDataReader reader)
    {
        long? At(int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);
        string? Text(int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
        var errors = Text(17) is { } json ? JsonSerializer.Deserialize(json, BatchJson.Context.BatchErrors) : null;
        var metadata = Text(18) is { } meta ? JsonSerializer.Deserialize(meta, BatchJson.Context.DictionaryStringString) : null;
        var completed = reader.GetInt32(20);
        var failed = reader.GetInt32(21);
        return new BatchObject(
            reader.GetString(0),
            "batch",
            reader.GetString(1),
            errors,
            reader.GetString(2),
            reader.GetString(3),
            reader.GetString(4),
            Text(15),
            Text(16),
            reader.GetInt64(6),
            At(8),
            reader.GetInt64(7),
            At(9),
            At(10),
            At(11),
            At(12),
            At(13),
            At(14),
            new BatchRequestCounts(reader.GetInt32(5), completed, failed),
            metadata);
    }

    private Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken) => _database.OpenAsync(cancellationToken);
}

/// <summary>What a status move also records.</summary>
internal sealed record BatchTransition(int? Total = null, string? OutputFileId = null, string? ErrorFileId = null, BatchErrors? Errors = null);
