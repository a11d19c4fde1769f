using LlmServer.Sessions;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>
/// A test hook in front of the server's session store: while held (<see cref="HoldFinishedAnswers"/>), the write of
/// a finished answer waits until <see cref="Release"/>, so a test can act while a turn's final save hangs, and knows
/// by <see cref="FinishedAnswerHeld"/> when one does. Everything else goes straight to the store.
/// </summary>
internal sealed class HeldAnswerStore(ISessionStore inner) : ISessionStore, IDisposable
{
    private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _holding;

    /// <summary>Completes when a finished answer's write first waits.</summary>
    public Task FinishedAnswerHeld => _held.Task;

    public string Location => inner.Location;

    /// <summary>Puts the hook in front of the registered store (for <see cref="TestServer.StartAsync"/>'s configureServices).</summary>
    public static void Install(IServiceCollection services)
    {
        var store = services.Last(d => d.ServiceType == typeof(ISessionStore));
        services.Remove(store);
        services.AddSingleton<HeldAnswerStore>(sp => new HeldAnswerStore((ISessionStore)store.ImplementationFactory!(sp)));
        services.AddSingleton<ISessionStore>(sp => sp.GetRequiredService<HeldAnswerStore>());
    }

    public void HoldFinishedAnswers() => _holding = true;

    public void Release() => _released.TrySetResult();

    public async Task<bool> SaveAnswerAsync(string? owner, string id, SessionMessage answer, CancellationToken cancellationToken)
    {
        if (_holding && answer.FinishReason is not null)
        {
            _held.TrySetResult();
            await _released.Task.WaitAsync(cancellationToken);
        }

        return await inner.SaveAnswerAsync(owner, id, answer, cancellationToken);
    }

    public string StoreId => inner.StoreId;

    public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

    public Task<bool> RequestStopAsync(string? owner, string id, CancellationToken cancellationToken) => inner.RequestStopAsync(owner, id, cancellationToken);

    public Task<bool> IsStopRequestedAsync(string id, CancellationToken cancellationToken) => inner.IsStopRequestedAsync(id, cancellationToken);

    public Task CreateAsync(StoredSession session, CancellationToken cancellationToken) => inner.CreateAsync(session, cancellationToken);

    public Task<IReadOnlyList<StoredSession>> ListAsync(string? owner, CancellationToken cancellationToken) => inner.ListAsync(owner, cancellationToken);

    public Task<StoredSession?> GetAsync(string? owner, string id, CancellationToken cancellationToken) => inner.GetAsync(owner, id, cancellationToken);

    public Task<StoredConversation?> GetConversationAsync(string? owner, string id, CancellationToken cancellationToken) =>
        inner.GetConversationAsync(owner, id, cancellationToken);

    public Task<StoredSession?> UpdateAsync(
        string? owner, string id, string? title, string? systemPrompt, SettingsChange? settings, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.UpdateAsync(owner, id, title, systemPrompt, settings, now, cancellationToken);

    public Task<bool> DeleteAsync(string? owner, string id, CancellationToken cancellationToken) => inner.DeleteAsync(owner, id, cancellationToken);

    public Task<bool> BeginTurnAsync(
        string? owner, string id, int fromIndex, SessionMessage? userMessage, DateTimeOffset now, int? contextStart, CancellationToken cancellationToken) =>
        inner.BeginTurnAsync(owner, id, fromIndex, userMessage, now, contextStart, cancellationToken);

    public Task<int> InterruptUnfinishedAsync(CancellationToken cancellationToken) => inner.InterruptUnfinishedAsync(cancellationToken);

    public void Dispose() => (inner as IDisposable)?.Dispose();
}
