using System.Data.Common;
using System.Globalization;
using static LlmServer.Sessions.DbCommands;

namespace LlmServer.Sessions;

/// <summary>
/// The one way a feature's tables are brought up to date, in SQLite and PostgreSQL alike: inside the caller's
/// transaction, each entry of the list moves the schema from version i to i + 1, the version kept in its own table.
/// </summary>
internal static class SchemaMigrations
{
    /// <summary>Applies the missing migrations; refuses a database from a newer server (<paramref name="description"/> names it).</summary>
    public static async Task ApplyAsync(
        DbConnection connection,
        DbTransaction transaction,
        string versionTable,
        IReadOnlyList<string> migrations,
        string description,
        CancellationToken cancellationToken)
    {
        await ExecuteAsync(connection, transaction, $"CREATE TABLE IF NOT EXISTS {versionTable} (version INTEGER NOT NULL);", cancellationToken);
        await using (var read = Command(connection, transaction, $"SELECT MAX(version) FROM {versionTable};"))
        {
            var current = await read.ExecuteScalarAsync(cancellationToken) is { } v and not DBNull ? Convert.ToInt32(v, CultureInfo.InvariantCulture) : 0;
            if (current > migrations.Count)
            {
                throw new InvalidOperationException($"{description} has schema version {current}, newer than this server's {migrations.Count}.");
            }

            for (var version = current; version < migrations.Count; version++)
            {
                await ExecuteAsync(connection, transaction, migrations[version], cancellationToken);
            }
        }

        await ExecuteAsync(connection, transaction, $"DELETE FROM {versionTable};", cancellationToken);
        await using var write = Command(connection, transaction, $"INSERT INTO {versionTable} (version) VALUES (@v);");
        var parameter = write.CreateParameter();
        parameter.ParameterName = "@v";
        parameter.Value = migrations.Count;
        write.Parameters.Add(parameter);
        await write.ExecuteNonQueryAsync(cancellationToken);
    }
}
