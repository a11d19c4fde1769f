using LlmServer.Engine.Generation;
using LlmServer.Sessions;
using LlmServer.Tests.Operations;
using LlmServer.Tests.Sessions;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// A session server for one test whose callers use an API key (<see cref="Key"/>), with one generation permit per key
/// and the engine's endings held (<see cref="HeldGenerator"/>), plus the test's own hooks and settings; its files are
/// removed afterwards. <see cref="Hang"/> only guards the waits on events, for the whole test: long enough for a
/// starved CI machine (a test took 4.5 minutes there), it only keeps a lost event from hanging the run.
/// </summary>
internal sealed class KeyedSessionServer : IAsyncDisposable
{
    public const string Key = AuthTests.KeyA;

    private readonly CancellationTokenSource _hang = new(TimeSpan.FromMinutes(10));

    private KeyedSessionServer(SessionTestServer sessions)
    {
        Sessions = sessions;
    }

    public SessionTestServer Sessions { get; }

    public TestServer Server => Sessions.Server;

    public HeldGenerator Held => (HeldGenerator)Server.Services.GetRequiredService<ITextGenerator>();

    public GenerationRegistry Registry => Server.Services.GetRequiredService<GenerationRegistry>();

    public CancellationToken Hang => _hang.Token;

    public static async Task<KeyedSessionServer> StartAsync(Action<IServiceCollection>? configureServices = null, params string[] extraArgs) =>
        new(await SessionTestServer.StartAsync(
            null,
            services =>
            {
                HeldGenerator.Install(services);
                configureServices?.Invoke(services);
            },
            [$"--Auth:ApiKeys:0={Key}", "--Limits:ConcurrentGenerationsPerKey=1", .. extraArgs]));

    /// <summary>A started hub connection with the key.</summary>
    public Task<HubConnection> ConnectAsync() => Sessions.ConnectAsync(Key);

    public async ValueTask DisposeAsync()
    {
        Held.Release();
        Server.Services.GetService<HeldAnswerStore>()?.Release();
        await Sessions.DisposeAsync();
        _hang.Dispose();
        Sessions.DeleteFiles();
    }
}
