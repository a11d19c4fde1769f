using LlmServer.Sessions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace LlmServer.Tests.Sessions;

public sealed class SessionStoreTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("llmserver-store-");

    [Fact]
    public async Task The_store_creates_its_folder_and_schema_and_reopens_it()
    {
        var path = Path.Combine(_folder.FullName, "nested", "sessions.db");
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        using (var store = Open(path))
        {
            await store.InitializeAsync(CancellationToken.None);
            await store.CreateAsync(new StoredSession("s1", "key-1", "t", null, new SessionSettings(0.5, null, 10, 7), now, now, 0), CancellationToken.None);
            Assert.True(await store.AppendAsync("s1", new SessionMessage(0, "user", "hi", now, null, null, null, null), now, CancellationToken.None));
        }

        using var reopened = Open(path);
        await reopened.InitializeAsync(CancellationToken.None);
        var loaded = await reopened.GetWithMessagesAsync("key-1", "s1", CancellationToken.None);
        Assert.NotNull(loaded);
        Assert.Equal(new SessionSettings(0.5, null, 10, 7), loaded.Value.Session.Settings);
        Assert.Equal("hi", Assert.Single(loaded.Value.Messages).Content);

        // Another owner (or anonymous) does not see it.
        Assert.Null(await reopened.GetWithMessagesAsync(null, "s1", CancellationToken.None));
        Assert.Empty(await reopened.ListAsync("key-2", CancellationToken.None));
        Assert.False(await reopened.DeleteAsync("key-2", "s1", CancellationToken.None));
        Assert.Equal("wal", await ScalarAsync(path, "PRAGMA journal_mode;"));
        Assert.Equal((long)SessionStore.SchemaVersion, await ScalarAsync(path, "SELECT version FROM schema_version;"));
    }

    [Fact]
    public async Task A_database_from_a_newer_server_is_refused()
    {
        var path = Path.Combine(_folder.FullName, "newer.db");
        using (var store = Open(path))
        {
            await store.InitializeAsync(CancellationToken.None);
        }

        await ScalarAsync(path, "UPDATE schema_version SET version = 99;");
        using var older = Open(path);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => older.InitializeAsync(CancellationToken.None));
        Assert.Contains("schema version 99", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_options_validator_reports_every_problem()
    {
        var result = new SessionOptionsValidator().Validate(null, new SessionOptions
        {
            Database = " ",
            ResumeGraceSeconds = -1,
            MaxMessageLength = 0,
            MaxTitleLength = 0,
            DefaultMaxTokens = -5,
        });

        Assert.True(result.Failed);
        Assert.Equal(5, result.Failures!.Count());
        Assert.True(new SessionOptionsValidator().Validate(null, new SessionOptions()).Succeeded);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _folder.Delete(recursive: true);
    }

    private static SessionStore Open(string path) => new(Options.Create(new SessionOptions { Database = path }));

    private static async Task<object?> ScalarAsync(string path, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }
}
