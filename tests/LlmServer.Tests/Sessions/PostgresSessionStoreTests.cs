using LlmServer.Sessions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace LlmServer.Tests.Sessions;

/// <summary>The session store contract on a real PostgreSQL server, and what only the shared store must do.</summary>
public sealed class PostgresSessionStoreTests(PostgresServer server) : SessionStoreContractTests, IClassFixture<PostgresServer>, IAsyncLifetime
{
    private readonly List<PostgresSessionStore> _stores = [];
    private string _connectionString = "";

    public async Task InitializeAsync() => _connectionString = await server.CreateDatabaseAsync();

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
    }

    [Fact]
    public async Task Replicas_starting_together_migrate_the_schema_once()
    {
        var stores = Enumerable.Range(0, 4).Select(i => Open($"r{i}", TimeProvider.System)).ToArray();
        await Task.WhenAll(stores.Select(s => s.InitializeAsync(CancellationToken.None)));
        Assert.Equal(PostgresSessionStore.SchemaVersion, Convert.ToInt32(await ScalarAsync("SELECT version FROM schema_version;"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1L, await ScalarAsync("SELECT COUNT(*) FROM schema_version;"));
    }

    [Fact]
    public async Task A_database_from_a_newer_server_is_refused()
    {
        await Open("a", TimeProvider.System).InitializeAsync(CancellationToken.None);
        await ScalarAsync("UPDATE schema_version SET version = 99;");
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => Open("b", TimeProvider.System).InitializeAsync(CancellationToken.None));
        Assert.Contains("schema version 99", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_version_4_database_gets_the_reasoning_columns_and_keeps_its_messages()
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        var store = Open("a", TimeProvider.System);
        await store.InitializeAsync(CancellationToken.None);
        await store.CreateAsync(new StoredSession("s1", null, "t", null, new SessionSettings(), now, now, 0), CancellationToken.None);
        Assert.True(await store.BeginTurnAsync(null, "s1", 0, new SessionMessage(0, "user", "hi", now, null, null, null, null), now, 0, CancellationToken.None));
        Assert.True(await store.SaveAnswerAsync(null, "s1", new SessionMessage(1, "assistant", "ho", now, 5, 0, 1, "stop", 0), CancellationToken.None));

        // Back to what version 4 wrote: no reasoning columns.
        NpgsqlConnection.ClearAllPools();
        await ScalarAsync("ALTER TABLE messages DROP COLUMN reasoning; ALTER TABLE messages DROP COLUMN reasoning_tokens; UPDATE schema_version SET version = 4;");

        var migrated = Open("a", TimeProvider.System);
        await migrated.InitializeAsync(CancellationToken.None);
        Assert.Equal(PostgresSessionStore.SchemaVersion, Convert.ToInt32(await ScalarAsync("SELECT version FROM schema_version;"), System.Globalization.CultureInfo.InvariantCulture));
        var kept = (await migrated.GetConversationAsync(null, "s1", CancellationToken.None))!.Messages[1];
        Assert.Equal(("ho", (string?)null, (int?)null), (kept.Content, kept.Reasoning, kept.ReasoningTokens));
        Assert.True(await migrated.SaveAnswerAsync(null, "s1", kept with { Reasoning = "hm", ReasoningTokens = 1 }, CancellationToken.None));
        var answer = (await migrated.GetConversationAsync(null, "s1", CancellationToken.None))!.Messages[1];
        Assert.Equal(("hm", (int?)1), (answer.Reasoning, answer.ReasoningTokens));
    }

    [Fact]
    public void Both_stores_have_the_same_schema_versions() =>
        Assert.Equal(SqliteSessionStore.SchemaVersion, PostgresSessionStore.SchemaVersion);

    private protected override Task<ISessionStore> OpenAsync(string replicaId, TimeProvider time) => Task.FromResult<ISessionStore>(Open(replicaId, time));

    private PostgresSessionStore Open(string replicaId, TimeProvider time)
    {
        var store = new PostgresSessionStore(Options.Create(new SessionOptions { Store = SessionOptions.PostgresStore, ConnectionString = _connectionString, ReplicaId = replicaId }), time);
        _stores.Add(store);
        return store;
    }

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }
}
