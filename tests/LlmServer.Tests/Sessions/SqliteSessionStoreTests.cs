using LlmServer.Sessions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace LlmServer.Tests.Sessions;

public sealed class SqliteSessionStoreTests : SessionStoreContractTests, IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("llmserver-store-");
    private readonly List<SqliteSessionStore> _stores = [];

    [Fact]
    public async Task The_store_creates_its_folder_and_schema_and_reopens_it()
    {
        var path = Path.Combine(_folder.FullName, "nested", "sessions.db");
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        using (var store = Open(path))
        {
            await store.InitializeAsync(CancellationToken.None);
            await store.CreateAsync(new StoredSession("s1", "key-1", "t", null, new SessionSettings(0.5, null, 10, 7), now, now, 0), CancellationToken.None);
            Assert.True(await store.BeginTurnAsync("key-1", "s1", 0, new SessionMessage(0, "user", "hi", now, null, null, null, null), now, null, CancellationToken.None));
        }

        using var reopened = Open(path);
        await reopened.InitializeAsync(CancellationToken.None);
        var loaded = await reopened.GetConversationAsync("key-1", "s1", CancellationToken.None);
        Assert.NotNull(loaded);
        Assert.Equal(new SessionSettings(0.5, null, 10, 7), loaded.Session.Settings);
        Assert.Equal(["hi", ""], loaded.Messages.Select(m => m.Content));

        // Another owner (or anonymous) does not see it.
        Assert.Null(await reopened.GetConversationAsync(null, "s1", CancellationToken.None));
        Assert.Empty(await reopened.ListAsync("key-2", CancellationToken.None));
        Assert.False(await reopened.DeleteAsync("key-2", "s1", CancellationToken.None));
        Assert.Equal("wal", await ScalarAsync(path, "PRAGMA journal_mode;"));
        Assert.Equal((long)SqliteSessionStore.SchemaVersion, await ScalarAsync(path, "SELECT version FROM schema_version;"));
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
    public async Task A_version_1_database_is_migrated_and_keeps_its_messages()
    {
        var path = Path.Combine(_folder.FullName, "v1.db");
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        using (var store = Open(path))
        {
            await store.InitializeAsync(CancellationToken.None);
            await store.CreateAsync(new StoredSession("s1", null, "t", null, new SessionSettings(), now, now, 0), CancellationToken.None);
            Assert.True(await store.BeginTurnAsync(null, "s1", 0, new SessionMessage(0, "user", "hi", now, null, null, null, null), now, null, CancellationToken.None));
        }

        // Back to what version 1 wrote: no context_start column, nor any later one.
        SqliteConnection.ClearAllPools();
        await ScalarAsync(path, "ALTER TABLE messages DROP COLUMN context_start; ALTER TABLE sessions DROP COLUMN lease_holder; ALTER TABLE sessions DROP COLUMN lease_expires_at; ALTER TABLE sessions DROP COLUMN stop_requested; DROP TABLE store_info; ALTER TABLE messages DROP COLUMN reasoning; ALTER TABLE messages DROP COLUMN reasoning_tokens; UPDATE schema_version SET version = 1;");

        using var migrated = Open(path);
        await migrated.InitializeAsync(CancellationToken.None);
        Assert.Equal((long)SqliteSessionStore.SchemaVersion, await ScalarAsync(path, "SELECT version FROM schema_version;"));
        Assert.True(LlmServer.ReplicaProtocol.SessionStoreIds.IsStoreId(migrated.StoreId));
        var message = (await migrated.GetConversationAsync(null, "s1", CancellationToken.None))!.Messages[0];
        Assert.Equal(("hi", (int?)null, (string?)null, (int?)null), (message.Content, message.ContextStart, message.Reasoning, message.ReasoningTokens));
        Assert.True(await migrated.SaveAnswerAsync(null, "s1", new SessionMessage(1, "assistant", "ho", now, 5, 0, 1, "stop", 0, "hm", 1), CancellationToken.None));
        var answer = (await migrated.GetConversationAsync(null, "s1", CancellationToken.None))!.Messages[1];
        Assert.Equal((0, "hm", (int?)1), (answer.ContextStart, answer.Reasoning, answer.ReasoningTokens));
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
            AnswerReserveTokens = 0,
            WindowLowWater = 1.5,
            CheckpointIntervalMilliseconds = 0,
            CheckpointTokens = -1,
            StopListenProbeSeconds = 0,
            StopSweepSeconds = 3601,
        });

        Assert.True(result.Failed);
        Assert.Equal(11, result.Failures!.Count());
        Assert.Contains(result.Failures!, f => f.Contains("Sessions:StopListenProbeSeconds", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.Contains("Sessions:StopSweepSeconds", StringComparison.Ordinal));
        Assert.True(new SessionOptionsValidator().Validate(null, new SessionOptions()).Succeeded);
    }

    public void Dispose()
    {
        foreach (var store in _stores)
        {
            store.Dispose();
        }

        SqliteConnection.ClearAllPools();
        _folder.Delete(recursive: true);
    }

    private protected override Task<ISessionStore> OpenAsync(string replicaId, TimeProvider time)
    {
        var store = new SqliteSessionStore(Options.Create(new SessionOptions { Database = Path.Combine(_folder.FullName, "contract.db"), ReplicaId = replicaId }), time);
        _stores.Add(store);
        return Task.FromResult<ISessionStore>(store);
    }

    private static SqliteSessionStore Open(string path) => new(Options.Create(new SessionOptions { Database = path }));

    private static async Task<object?> ScalarAsync(string path, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }
}
