namespace LlmServer.Router.Tests.Infrastructure;

/// <summary>Two replicas over one sessions database, with the router in front of them.</summary>
public sealed class ReplicaCluster : IAsyncLifetime
{
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("llmserver-router-");

    internal ReplicaProcess First { get; private set; } = null!;

    internal ReplicaProcess Second { get; private set; } = null!;

    internal RouterHost Router { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var database = $"--Sessions:Database={Path.Combine(_data.FullName, "sessions.db")}";

        // One after the other: the first creates the shared database's schema.
        First = await ReplicaProcess.StartAsync(database);
        Second = await ReplicaProcess.StartAsync(database);
        Router = await RouterHost.StartAsync(First.Address, Second.Address);
        await Router.WaitForHealthAsync(First.Address, "healthy");
        await Router.WaitForHealthAsync(Second.Address, "healthy");
    }

    public async Task DisposeAsync()
    {
        if (Router is not null)
        {
            await Router.DisposeAsync();
        }

        foreach (var replica in new[] { First, Second })
        {
            if (replica is not null)
            {
                await replica.DisposeAsync();
            }
        }

        _data.Delete(recursive: true);
    }
}
