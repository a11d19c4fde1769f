using System.Data.Common;
using static LlmServer.Sessions.DbCommands;

namespace LlmServer.Sessions;

/// <summary>
/// The session store's queries, shared by the SQLite and PostgreSQL stores, which differ only in how they connect,
/// in their column types and in a few words of SQL (<see cref="NullSafeEquals"/>, <see cref="LockRow"/>).
/// Every write is one transaction. A turn holds a lease on its session (<see cref="SessionOptions.TurnLeaseSeconds"/>,
/// renewed by each checkpoint), so two servers sharing the database never run a turn of one session at once.
/// </summary>
internal abstract class SqlSessionStore : ISessionStore
{
    private readonly TimeSpan _leaseDuration;

    protected SqlSessionStore(SessionOptions options, TimeProvider timeProvider)
    {
        _leaseDuration = TimeSpan.FromSeconds(options.TurnLeaseSeconds);
        ReplicaId = options.ReplicaId;
        Time = timeProvider;
    }

    /// <summary>This server's name in leases: a restarted server takes its own unfinished leases back at once.</summary>
    public string ReplicaId { get; }

    public abstract string Location { get; }

    public string StoreId { get; private set; } = "";

    protected TimeProvider Time { get; }

    /// <summary>Null-safe equality: SQLite's <c>IS</c>, PostgreSQL's <c>IS NOT DISTINCT FROM</c>.</summary>
    protected abstract string NullSafeEquals { get; }

    /// <summary>What locks a row read inside a transaction (PostgreSQL's <c>FOR UPDATE</c>; SQLite locks the database on write).</summary>
    protected abstract string LockRow { get; }

    /// <summary>The session's columns; its message count leaves out the answer being written (see <see cref="SessionInfo.MessageCount"/>).</summary>
    private string SessionColumns =>
        "s.id, s.owner, s.title, s.system_prompt, s.temperature, s.top_p, s.max_tokens, s.seed, s.created_at, s.updated_at, " +
        "(SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id AND (m.role <> 'assistant' OR m.finish_reason IS NOT NULL)), s.lease_expires_at";

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await MigrateAsync(cancellationToken);
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT store_id FROM store_info;");
        StoreId = await command.ExecuteScalarAsync(cancellationToken) as string
            ?? throw new InvalidOperationException($"The sessions database '{Location}' has no store id.");
    }

    public async Task CreateAsync(StoredSession session, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            """
            INSERT INTO sessions (id, owner, title, system_prompt, temperature, top_p, max_tokens, seed, created_at, updated_at)
            VALUES (@id, @owner, @title, @system, @temperature, @topP, @maxTokens, @seed, @created, @updated);
            """);
        Add(command, "@id", session.Id);
        Add(command, "@owner", session.Owner);
        Add(command, "@title", session.Title);
        Add(command, "@system", session.SystemPrompt);
        AddSettings(command, session.Settings);
        Add(command, "@created", session.CreatedAt.ToUnixTimeMilliseconds());
        Add(command, "@updated", session.UpdatedAt.ToUnixTimeMilliseconds());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<StoredSession>> ListAsync(string? owner, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(
            connection,
            null,
            $"SELECT {SessionColumns} FROM sessions s WHERE s.owner {NullSafeEquals} @owner ORDER BY s.updated_at DESC, s.created_at DESC, s.id;");
        Add(command, "@owner", owner);
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
        await using var transaction = await BeginReadAsync(connection, cancellationToken);
        var session = await GetAsync(connection, transaction, owner, id, cancellationToken);
        if (session is null)
        {
            return null;
        }

        await using var command = Command(
            connection,
            transaction,
            """
            SELECT idx, role, content, created_at, prompt_tokens, cached_tokens, completion_tokens, finish_reason, context_start, reasoning, reasoning_tokens
            FROM messages WHERE session_id = @id ORDER BY idx;
            """);
        Add(command, "@id", id);
        var messages = new List<SessionMessage>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                messages.Add(new SessionMessage(
                    Int(reader, 0),
                    reader.GetString(1),
                    reader.GetString(2),
                    FromUnixMs(reader.GetInt64(3)),
                    NullableInt(reader, 4),
                    NullableInt(reader, 5),
                    NullableInt(reader, 6),
                    reader.IsDBNull(7) ? null : reader.GetString(7),
                    NullableInt(reader, 8),
                    reader.IsDBNull(9) ? null : reader.GetString(9),
                    NullableInt(reader, 10)));
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
        SettingsChange? settings,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = Command(
            connection,
            transaction,
            $"""
            UPDATE sessions SET
                title = COALESCE(@title, title),
                system_prompt = CASE WHEN @setSystem THEN @system ELSE system_prompt END,
                temperature = CASE WHEN @setTemperature THEN @temperature ELSE temperature END,
                top_p = CASE WHEN @setTopP THEN @topP ELSE top_p END,
                max_tokens = CASE WHEN @setMaxTokens THEN @maxTokens ELSE max_tokens END,
                seed = CASE WHEN @setSeed THEN @seed ELSE seed END,
                updated_at = @updated
            WHERE id = @id AND owner {NullSafeEquals} @owner;
            """);
        Add(command, "@id", id);
        Add(command, "@owner", owner);
        Add(command, "@title", title);
        Add(command, "@setSystem", systemPrompt is not null);
        Add(command, "@system", string.IsNullOrEmpty(systemPrompt) ? null : systemPrompt);
        var given = settings?.Given ?? SettingsFields.None;
        Add(command, "@setTemperature", given.HasFlag(SettingsFields.Temperature));
        Add(command, "@setTopP", given.HasFlag(SettingsFields.TopP));
        Add(command, "@setMaxTokens", given.HasFlag(SettingsFields.MaxTokens));
        Add(command, "@setSeed", given.HasFlag(SettingsFields.Seed));
        AddSettings(command, settings?.Values ?? new SessionSettings());
        Add(command, "@updated", now.ToUnixTimeMilliseconds());
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
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (!await LockUnlessLeasedElsewhereAsync(connection, transaction, owner, id, Time.GetUtcNow(), cancellationToken))
        {
            return false;
        }

        await using var command = Command(connection, transaction, $"DELETE FROM sessions WHERE id = @id AND owner {NullSafeEquals} @owner;");
        Add(command, "@id", id);
        Add(command, "@owner", owner);
        var deleted = await command.ExecuteNonQueryAsync(cancellationToken) > 0;
        await transaction.CommitAsync(cancellationToken);
        return deleted;
    }

    public async Task<bool> BeginTurnAsync(
        string? owner, string id, int fromIndex, SessionMessage? userMessage, DateTimeOffset now, int? contextStart, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var leaseNow = Time.GetUtcNow();
        if (!await LockUnlessLeasedElsewhereAsync(connection, transaction, owner, id, leaseNow, cancellationToken))
        {
            return false;
        }

        // A turn another server left unfinished (it stopped, and its lease ran out) is kept as interrupted.
        await using (var interrupt = Command(connection, transaction, "UPDATE messages SET finish_reason = 'interrupted' WHERE session_id = @id AND role = 'assistant' AND finish_reason IS NULL;"))
        {
            Add(interrupt, "@id", id);
            await interrupt.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var take = Command(connection, transaction, "UPDATE sessions SET updated_at = @updated, lease_holder = @holder, lease_expires_at = @expires, stop_requested = NULL WHERE id = @id;"))
        {
            Add(take, "@id", id);
            Add(take, "@updated", now.ToUnixTimeMilliseconds());
            Add(take, "@holder", ReplicaId);
            Add(take, "@expires", (leaseNow + _leaseDuration).ToUnixTimeMilliseconds());
            await take.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var delete = Command(connection, transaction, "DELETE FROM messages WHERE session_id = @id AND idx >= @from;"))
        {
            Add(delete, "@id", id);
            Add(delete, "@from", fromIndex);
            await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        if (userMessage is not null)
        {
            await WriteMessageAsync(connection, transaction, id, userMessage, cancellationToken);
        }

        // The answer's place is taken with the turn (empty, unfinished), so a server that stops before the first
        // checkpoint still leaves an answer to mark interrupted, and the roles keep alternating.
        var answerIndex = fromIndex + (userMessage is null ? 0 : 1);
        await WriteMessageAsync(connection, transaction, id, new SessionMessage(answerIndex, "assistant", string.Empty, now, null, null, null, null, contextStart), cancellationToken);

        // Not cancellable: a cancel arriving while PostgreSQL commits can leave the turn committed (the answer open, the
        // lease held) with the caller told it failed, and nothing then closes that answer until the lease runs out.
        await transaction.CommitAsync(CancellationToken.None);
        return true;
    }

    public async Task<bool> SaveAnswerAsync(string? owner, string id, SessionMessage answer, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // A checkpoint renews this server's lease and a finished answer gives it up; a session whose lease another
        // server took over (this one stalled past it) is no longer this turn's to write.
        var finished = answer.FinishReason is not null;
        await using (var touch = Command(
            connection,
            transaction,
            $"""
            UPDATE sessions SET updated_at = @updated,
                lease_holder = CASE WHEN @finished THEN NULL ELSE @holder END,
                lease_expires_at = CASE WHEN @finished THEN NULL ELSE @expires END,
                stop_requested = CASE WHEN @finished THEN NULL ELSE stop_requested END
            WHERE id = @id AND owner {NullSafeEquals} @owner AND (lease_holder IS NULL OR lease_holder = @holder);
            """))
        {
            Add(touch, "@id", id);
            Add(touch, "@owner", owner);
            Add(touch, "@updated", answer.CreatedAt.ToUnixTimeMilliseconds());
            Add(touch, "@finished", finished);
            Add(touch, "@holder", ReplicaId);
            Add(touch, "@expires", (Time.GetUtcNow() + _leaseDuration).ToUnixTimeMilliseconds());
            if (await touch.ExecuteNonQueryAsync(cancellationToken) == 0)
            {
                return false;
            }
        }

        await WriteMessageAsync(connection, transaction, id, answer, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public async Task<int> InterruptUnfinishedAsync(CancellationToken cancellationToken)
    {
        // Only answers no live server is writing: this server's own (it restarted) or those whose lease ran out.
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        int count;
        const string stale = "(lease_holder IS NULL OR lease_holder = @holder OR lease_expires_at <= @now)";
        await using (var interrupt = Command(
            connection,
            transaction,
            $"UPDATE messages SET finish_reason = 'interrupted' WHERE role = 'assistant' AND finish_reason IS NULL AND session_id IN (SELECT id FROM sessions WHERE {stale});"))
        {
            Add(interrupt, "@holder", ReplicaId);
            Add(interrupt, "@now", Time.GetUtcNow().ToUnixTimeMilliseconds());
            count = await interrupt.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var release = Command(connection, transaction, "UPDATE sessions SET lease_holder = NULL, lease_expires_at = NULL WHERE lease_holder = @holder;"))
        {
            Add(release, "@holder", ReplicaId);
            await release.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return count;
    }

    public async Task<bool> RequestStopAsync(string? owner, string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = Time.GetUtcNow().ToUnixTimeMilliseconds();
        await using (var request = Command(
            connection,
            transaction,
            $"""
            UPDATE sessions SET stop_requested = @now
            WHERE id = @id AND owner {NullSafeEquals} @owner AND lease_holder IS NOT NULL AND lease_holder <> @holder AND lease_expires_at > @now;
            """))
        {
            Add(request, "@id", id);
            Add(request, "@owner", owner);
            Add(request, "@holder", ReplicaId);
            Add(request, "@now", now);
            if (await request.ExecuteNonQueryAsync(cancellationToken) == 0)
            {
                return false;
            }
        }

        await NotifyStopRequestedAsync(connection, transaction, id, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public async Task<bool> IsStopRequestedAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT COUNT(*) FROM sessions WHERE id = @id AND lease_holder = @holder AND stop_requested IS NOT NULL;");
        Add(command, "@id", id);
        Add(command, "@holder", ReplicaId);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>Creates the schema or brings it up to date (the store's id is made with it).</summary>
    protected abstract Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>Tells the server holding the session's lease, sent when <paramref name="transaction"/> commits; nothing by default.</summary>
    protected virtual Task NotifyStopRequestedAsync(DbConnection connection, DbTransaction transaction, string id, CancellationToken cancellationToken) =>
        Task.CompletedTask;

    protected abstract Task<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>A transaction for reads that must agree with each other.</summary>
    protected virtual async Task<DbTransaction> BeginReadAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await connection.BeginTransactionAsync(cancellationToken);

    /// <summary>
    /// Locks the session's row for a write that must not overlap a turn another live server runs there: refuses
    /// with <c>busy</c> while that server's lease holds. False when the session is gone (for this owner).
    /// </summary>
    private async Task<bool> LockUnlessLeasedElsewhereAsync(
        DbConnection connection, DbTransaction transaction, string? owner, string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        string? holder;
        long? expires;
        await using (var read = Command(connection, transaction, $"SELECT lease_holder, lease_expires_at FROM sessions WHERE id = @id AND owner {NullSafeEquals} @owner{LockRow};"))
        {
            Add(read, "@id", id);
            Add(read, "@owner", owner);
            await using var reader = await read.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return false;
            }

            holder = reader.IsDBNull(0) ? null : reader.GetString(0);
            expires = reader.IsDBNull(1) ? null : reader.GetInt64(1);
        }

        if (holder is not null && holder != ReplicaId && expires > now.ToUnixTimeMilliseconds())
        {
            throw new SessionException(SessionErrorCodes.Busy, "a turn of this session is running on another server; wait for it to finish", "sessionId")
            {
                RetryAfter = FromUnixMs(expires.Value) - now,
            };
        }

        return true;
    }

    private async Task<StoredSession?> GetAsync(
        DbConnection connection, DbTransaction? transaction, string? owner, string id, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, $"SELECT {SessionColumns} FROM sessions s WHERE s.id = @id AND s.owner {NullSafeEquals} @owner;");
        Add(command, "@id", id);
        Add(command, "@owner", owner);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadSession(reader) : null;
    }

    /// <summary>Inserts the message, or replaces the one at its index (an answer's checkpoint).</summary>
    private static async Task WriteMessageAsync(
        DbConnection connection, DbTransaction transaction, string id, SessionMessage message, CancellationToken cancellationToken)
    {
        await using var command = Command(
            connection,
            transaction,
            """
            INSERT INTO messages (session_id, idx, role, content, created_at, prompt_tokens, cached_tokens, completion_tokens, finish_reason, context_start, reasoning, reasoning_tokens)
            VALUES (@id, @idx, @role, @content, @created, @prompt, @cached, @completion, @finish, @contextStart, @reasoning, @reasoningTokens)
            ON CONFLICT (session_id, idx) DO UPDATE SET
                role = excluded.role,
                content = excluded.content,
                created_at = excluded.created_at,
                prompt_tokens = excluded.prompt_tokens,
                cached_tokens = excluded.cached_tokens,
                completion_tokens = excluded.completion_tokens,
                finish_reason = excluded.finish_reason,
                context_start = excluded.context_start,
                reasoning = excluded.reasoning,
                reasoning_tokens = excluded.reasoning_tokens;
            """);
        Add(command, "@id", id);
        Add(command, "@idx", message.Index);
        Add(command, "@role", message.Role);
        Add(command, "@content", message.Content);
        Add(command, "@created", message.CreatedAt.ToUnixTimeMilliseconds());
        Add(command, "@prompt", message.PromptTokens);
        Add(command, "@cached", message.CachedTokens);
        Add(command, "@completion", message.CompletionTokens);
        Add(command, "@finish", message.FinishReason);
        Add(command, "@contextStart", message.ContextStart);
        Add(command, "@reasoning", message.Reasoning);
        Add(command, "@reasoningTokens", message.ReasoningTokens);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void AddSettings(DbCommand command, SessionSettings settings)
    {
        Add(command, "@temperature", settings.Temperature);
        Add(command, "@topP", settings.TopP);
        Add(command, "@maxTokens", settings.MaxTokens);
        Add(command, "@seed", settings.Seed);
    }

    private static void Add<T>(DbCommand command, string name, T value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = (object?)value ?? DBNull.Value;
        if (value is null)
        {
            // An untyped null is fine for SQLite; PostgreSQL wants to know what it is.
            parameter.DbType = typeof(T) == typeof(string) ? System.Data.DbType.String
                : Nullable.GetUnderlyingType(typeof(T)) == typeof(double) ? System.Data.DbType.Double
                : Nullable.GetUnderlyingType(typeof(T)) == typeof(long) ? System.Data.DbType.Int64
                : System.Data.DbType.Int32;
        }

        command.Parameters.Add(parameter);
    }

    private StoredSession ReadSession(DbDataReader reader) => new(
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
        Int(reader, 10),
        TurnRunning: !reader.IsDBNull(11) && reader.GetInt64(11) > Time.GetUtcNow().ToUnixTimeMilliseconds());

    private static int Int(DbDataReader reader, int ordinal) => Convert.ToInt32(reader.GetValue(ordinal), System.Globalization.CultureInfo.InvariantCulture);

    private static int? NullableInt(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : Int(reader, ordinal);

    private static DateTimeOffset FromUnixMs(long value) => SessionTime.FromUnixMilliseconds(value);
}
