using Microsoft.Data.Sqlite;

namespace LlmServer.Sessions;

/// <summary>
/// One SQLite file (WAL) that several features share: how it is opened, and each feature's schema migrations,
/// applied in one transaction with the version kept in the feature's own table.
/// </summary>
/// <param name="busyTimeoutSeconds">How long a command waits for a lock another connection holds (<c>Sessions:SqliteBusyTimeoutSeconds</c>).</param>
internal sealed class SqliteDatabase(string path, int busyTimeoutSeconds)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);

    public string ConnectionString { get; } = new SqliteConnectionStringBuilder
    {
        DataSource = System.IO.Path.GetFullPath(path),
        Mode = SqliteOpenMode.ReadWriteCreate,
        ForeignKeys = true,
        Pooling = true,
        DefaultTimeout = busyTimeoutSeconds,
    }.ToString();

    /// <summary>
    /// Creates the folder and the file, switches it to WAL and brings one feature's tables up to date: each entry of
    /// <paramref name="migrations"/> moves the schema from version i to i + 1, recorded in <paramref name="versionTable"/>.
    /// </summary>
    public async Task MigrateAsync(string versionTable, IReadOnlyList<string> migrations, string description, CancellationToken cancellationToken)
    {
        var folder = System.IO.Path.GetDirectoryName(Path);
        if (!string.IsNullOrEmpty(folder))
        {
            Directory.CreateDirectory(folder);
        }

        await using var connection = await OpenAsync(cancellationToken);
        await DbCommands.ExecuteAsync(connection, null, "PRAGMA journal_mode = WAL;", cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await SchemaMigrations.ApplyAsync(connection, transaction, versionTable, migrations, description, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(ConnectionString);
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

    /// <summary>A command typed for SQLite (its parameters take <c>AddWithValue</c>).</summary>
    public static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql) =>
        (SqliteCommand)DbCommands.Command(connection, transaction, sql);
}
