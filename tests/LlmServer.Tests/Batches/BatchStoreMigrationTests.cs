using System.Text;
using LlmServer.Batches;
using LlmServer.Sessions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace LlmServer.Tests.Batches;

/// <summary>The batch tables of a database written before batches kept their own copy of their input.</summary>
public sealed class BatchStoreMigrationTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("llmserver-batch-migration-").FullName;

    [Fact]
    public async Task A_batch_running_at_the_upgrade_keeps_its_input_when_its_file_is_deleted_later()
    {
        var path = Path.Combine(_folder, "v1.db");
        await new BatchStore(Options(path)).InitializeAsync(CancellationToken.None);

        // Back to what version 1 wrote: no input column; one batch running and one finished, both from one file.
        await ExecuteAsync(path, """
            ALTER TABLE batches DROP COLUMN input;
            DELETE FROM batch_schema_version;
            INSERT INTO batch_schema_version (version) VALUES (1);
            INSERT INTO batch_files (id, owner, filename, purpose, bytes, created_at, content) VALUES ('file-1', NULL, 'b.jsonl', 'batch', 5, 0, CAST('lines' AS BLOB));
            INSERT INTO batches (id, owner, endpoint, input_file_id, completion_window, status, created_at, expires_at)
            VALUES ('batch_running', NULL, '/v1/chat/completions', 'file-1', '24h', 'in_progress', 0, 0),
                   ('batch_done', NULL, '/v1/chat/completions', 'file-1', '24h', 'completed', 0, 0);
            """);

        var store = new BatchStore(Options(path));
        await store.InitializeAsync(CancellationToken.None);
        Assert.True(await store.DeleteFileAsync("file-1", null, CancellationToken.None));

        Assert.Equal("lines", Encoding.UTF8.GetString((await store.GetBatchInputAsync("batch_running", CancellationToken.None))!));
        Assert.Null(await store.GetBatchInputAsync("batch_done", CancellationToken.None));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
    }

    private static IOptions<SessionOptions> Options(string path) => Microsoft.Extensions.Options.Options.Create(new SessionOptions { Database = path });

    private static async Task ExecuteAsync(string path, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
