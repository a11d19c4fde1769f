using LlmServer.Sessions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LlmServer.Tests.Sessions;

public sealed class ReplicaIdTests
{
    [Fact]
    public void Without_a_configured_replica_id_a_postgres_replica_leases_under_its_own_process_name()
    {
        // Two replicas on one machine no longer share the machine name as their lease holder.
        Assert.Equal(SessionOptions.ProcessReplicaId, Resolve([new("Sessions:Store", "postgres"), new("ConnectionStrings:Sessions", "Host=127.0.0.1")]).ReplicaId);
        Assert.StartsWith($"{Environment.MachineName}-{Environment.ProcessId}-", SessionOptions.ProcessReplicaId, StringComparison.Ordinal);
        Assert.True(SessionOptions.ProcessReplicaId.Length > $"{Environment.MachineName}-{Environment.ProcessId}-".Length);
    }

    [Fact]
    public void A_sqlite_server_keeps_the_machine_name_and_a_configured_replica_id_is_kept()
    {
        // One server's SQLite file: a restart on it takes its own unfinished turns back at once.
        Assert.Equal(Environment.MachineName, Resolve([]).ReplicaId);
        Assert.Equal("replica-1", Resolve([new("Sessions:Store", "postgres"), new("ConnectionStrings:Sessions", "Host=127.0.0.1"), new("Sessions:ReplicaId", "replica-1")]).ReplicaId);
    }

    private static SessionOptions Resolve(KeyValuePair<string, string?>[] settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        using var services = new ServiceCollection().AddLogging().AddSessions(configuration).BuildServiceProvider();
        return services.GetRequiredService<IOptions<SessionOptions>>().Value;
    }
}
