using System.Data.Common;
using Microsoft.Extensions.Options;
using Npgsql;
using static LlmServer.Sessions.DbCommands;

namespace LlmServer.Sessions;

/// <summary>
/// Sessions in PostgreSQL, shared by replicas (<c>Sessions:Store = postgres</c>, connection string
/// <c>ConnectionStrings:Sessions</c>). Same schema versions as the SQLite store; migrations run under an advisory
/// lock so replicas starting together migrate once.
/// </summary>
internal sealed class PostgresSessionStore : SqlSessionStore, IAsyncDisposable, IDisposable
{
    // Each entry moves the schema from version i to i + 1, as the SQLite store's do; append, never edit.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE sessions (
            id text NOT NULL PRIMARY KEY,
            owner text NULL,
            title text NOT NULL,
            system_prompt text NULL,
            temperature double precision NULL,
            top_p double precision NULL,
            max_tokens integer NULL,
            seed bigint NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL
        );
        CREATE INDEX ix_sessions_owner_updated ON sessions (owner, updated_at DESC);
        CREATE TABLE messages (
            session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            idx integer NOT NULL,
            role text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content text NOT NULL,
            created_at bigint NOT NULL,
            prompt_tokens integer NULL,
            cached_tokens integer NULL,
            completion_tokens integer NULL,
            finish_reason text NULL,
            PRIMARY KEY (session_id, idx)
        );
        """,
        "ALTER TABLE messages ADD COLUMN context_start integer NULL;",
        "ALTER TABLE sessions ADD COLUMN lease_holder text NULL, ADD COLUMN lease_expires_at bigint NULL;",
        """
        CREATE TABLE store_info (store_id text NOT NULL);
        INSERT INTO store_info (store_id) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 12));
        ALTER TABLE sessions ADD COLUMN stop_requested bigint NULL;
        """,
        "ALTER TABLE messages ADD COLUMN reasoning text NULL;",
        "ALTER TABLE messages ADD COLUMN reasoning_tokens integer NULL;",
    ];

    // Any constant: every replica takes the same advisory lock around its migrations.
    private const long MigrationLock = 0x4C4C4D5345535331;

    // The channel a stop request is announced on (pg_notify with the session id), sent when its transaction commits.
    private const string StopChannel = "llmserver_session_stop";

    /// <summary>The <c>application_name</c> of the connection that listens for stops (operators can find it).</summary>
    public const string ListenerApplicationName = "llmserver-stop-listener";

    // A listening connection that stays idle is asked this often whether it still answers (Sessions:StopListenProbeSeconds).
    private readonly TimeSpan _listenProbeInterval;

    private readonly NpgsqlDataSource _dataSource;

    // Its own unpooled connection, named so operators (and tests) can find it: a dead one is never handed out again.
    private readonly NpgsqlDataSource _listenSource;

    public PostgresSessionStore(IOptions<SessionOptions> options, TimeProvider timeProvider)
        : base(options.Value, timeProvider)
    {
        var builder = new NpgsqlConnectionStringBuilder(options.Value.ConnectionString);
        Location = $"postgres://{builder.Host}:{builder.Port}/{builder.Database}";
        _listenProbeInterval = options.Value.StopListenProbe;
        _dataSource = NpgsqlDataSource.Create(builder.ConnectionString);
        _listenSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(builder.ConnectionString)
        {
            ApplicationName = ListenerApplicationName,
            Pooling = false,
        }.ConnectionString);
    }

    public static int SchemaVersion => Migrations.Length;

    public override string Location { get; }

    protected override string NullSafeEquals => "IS NOT DISTINCT FROM";

    protected override string LockRow => " FOR UPDATE";

    // A read of a session and its messages is two statements: one snapshot for both, or a save committed between them
    // gives a count and messages that disagree (read committed takes a snapshot per statement).
    protected override async Task<DbTransaction> BeginReadAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);

    protected override async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = Command(connection, transaction, "SELECT pg_advisory_xact_lock(@lock);"))
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = "@lock";
            parameter.Value = MigrationLock;
            command.Parameters.Add(parameter);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await SchemaMigrations.ApplyAsync(connection, transaction, "schema_version", Migrations, $"The sessions database '{Location}'", cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// Listens for stop requests (<see cref="SqlSessionStore.RequestStopAsync"/>) until cancelled or the connection
    /// fails: <paramref name="onListening"/> once listening (what was asked before may have been missed),
    /// <paramref name="onStopRequested"/> with each session id, on the listening connection's thread (it must not block).
    /// An idle connection is probed with <c>SELECT 1</c> (bounded by a command timeout) so a dead one fails and is
    /// replaced rather than waited on for ever.
    /// </summary>
    public async Task ListenForStopsAsync(Action onListening, Action<string> onStopRequested, CancellationToken cancellationToken)
    {
        await using var connection = await _listenSource.OpenConnectionAsync(cancellationToken);
        connection.Notification += (_, e) => onStopRequested(e.Payload);
        await using (var listen = new NpgsqlCommand($"LISTEN {StopChannel};", connection))
        {
            await listen.ExecuteNonQueryAsync(cancellationToken);
        }

        onListening();
        while (true)
        {
            if (!await connection.WaitAsync(_listenProbeInterval, cancellationToken))
            {
                // The next wait starts only once the probe has ended, so a probe never overlaps the next; a dead
                // connection fails within two intervals (the idle wait, then the probe's timeout).
                await using var probe = new NpgsqlCommand("SELECT 1;", connection) { CommandTimeout = (int)_listenProbeInterval.TotalSeconds };
                await probe.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _listenSource.DisposeAsync();
        await _dataSource.DisposeAsync();
    }

    public void Dispose()
    {
        _listenSource.Dispose();
        _dataSource.Dispose();
    }

    protected override async Task NotifyStopRequestedAsync(DbConnection connection, DbTransaction transaction, string id, CancellationToken cancellationToken)
    {
        await using var notify = Command(connection, transaction, $"SELECT pg_notify('{StopChannel}', @id);");
        var parameter = notify.CreateParameter();
        parameter.ParameterName = "@id";
        parameter.Value = id;
        notify.Parameters.Add(parameter);
        await notify.ExecuteNonQueryAsync(cancellationToken);
    }

    protected override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await _dataSource.OpenConnectionAsync(cancellationToken);
}
