using System.Data.Common;

namespace LlmServer.Sessions;

/// <summary>The ADO.NET commands every SQL store here builds (sessions in SQLite and PostgreSQL, schema migrations, batches).</summary>
internal static class DbCommands
{
    public static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    public static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
