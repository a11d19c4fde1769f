using System.Runtime.CompilerServices;
using LlmServer.Operations.Limits;
using Microsoft.AspNetCore.SignalR;

namespace LlmServer.Sessions;

/// <summary>
/// The sessions hub at <c>/hubs/chat</c> (README, "Sessions"). Errors are <see cref="HubException"/>s whose message
/// is a stable code, ": ", then text. Streams subscribe to a generation that runs on its own: a dropped
/// connection leaves it running for the resume grace period, while a stream the client cancels stops it. The methods
/// that start a turn are marked <see cref="RunsModelAttribute"/>; the turn keeps the invocation's permit until it ends.
/// </summary>
internal sealed class ChatHub : Hub
{
    private readonly SessionService _sessions;
    private readonly SessionTurns _turns;
    private readonly CallPermit _permit;

    public ChatHub(SessionService sessions, SessionTurns turns, CallPermit permit)
    {
        _sessions = sessions;
        _turns = turns;
        _permit = permit;
    }

    private string? Owner => SessionCaller.Owner(Context.User);

    public Task<SessionInfo> CreateSession(CreateSessionRequest? request) =>
        Guard(() => _sessions.CreateAsync(Owner, request, Context.ConnectionAborted));

    public Task<SessionInfo[]> ListSessions() =>
        Guard(() => _sessions.ListAsync(Owner, Context.ConnectionAborted));

    public Task<SessionDetail> GetSession(string id) =>
        Guard(() => _sessions.GetAsync(Owner, id, Context.ConnectionAborted));

    public Task<SessionInfo> RenameSession(string id, string title) =>
        Guard(() => _sessions.RenameAsync(Owner, id, title, Context.ConnectionAborted));

    /// <summary>Replaces the settings (when given) and the system prompt (when not null; empty clears it).</summary>
    public Task<SessionInfo> UpdateSettings(string id, SessionSettings? settings, string? systemPrompt) =>
        Guard(() => _sessions.UpdateAsync(Owner, id, new UpdateSessionRequest(SystemPrompt: systemPrompt, Settings: settings), SettingsFields.All, Context.ConnectionAborted));

    public Task DeleteSession(string id) =>
        Guard(async () =>
        {
            await _sessions.DeleteAsync(Owner, id, Context.ConnectionAborted);
            return true;
        });

    public Task StopGeneration(string sessionId) =>
        Guard(async () =>
        {
            await _turns.StopAsync(Owner, sessionId, Context.ConnectionAborted);
            return true;
        });

    [RunsModel]
    public IAsyncEnumerable<ChatStreamEvent> SendMessage(string sessionId, string text, CancellationToken cancellationToken)
    {
        var owner = Owner;
        return Follow(ct => _turns.SendAsync(owner, sessionId, text, _permit, ct), Context.ConnectionAborted, cancellationToken);
    }

    [RunsModel]
    public IAsyncEnumerable<ChatStreamEvent> Regenerate(string sessionId, CancellationToken cancellationToken)
    {
        var owner = Owner;
        return Follow(ct => _turns.RegenerateAsync(owner, sessionId, _permit, ct), Context.ConnectionAborted, cancellationToken);
    }

    [RunsModel]
    public IAsyncEnumerable<ChatStreamEvent> EditMessage(string sessionId, int index, string text, CancellationToken cancellationToken)
    {
        var owner = Owner;
        return Follow(ct => _turns.EditAsync(owner, sessionId, index, text, _permit, ct), Context.ConnectionAborted, cancellationToken);
    }

    public IAsyncEnumerable<ChatStreamEvent> ResumeStream(string sessionId, long afterSeq, CancellationToken cancellationToken)
    {
        var owner = Owner;
        return Follow(ct => _turns.ResumeAsync(owner, sessionId, afterSeq, ct), Context.ConnectionAborted, cancellationToken);
    }

    private static async Task<T> Guard<T>(Func<Task<T>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception ex) when (SessionErrors.Of(ex) is { } error)
        {
            throw SessionErrors.ToHub(error);
        }
    }

    private static async IAsyncEnumerable<ChatStreamEvent> Follow(
        Func<CancellationToken, Task<GenerationSubscription>> subscribe,
        CancellationToken connectionAborted,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        GenerationSubscription subscription;
        try
        {
            subscription = await subscribe(cancellationToken);
        }
        catch (Exception ex) when (SessionErrors.Of(ex) is { } error)
        {
            throw SessionErrors.ToHub(error);
        }

        await using (subscription)
        {
            var completed = false;
            try
            {
                await foreach (var item in subscription.ReadAllAsync(cancellationToken))
                {
                    yield return item;
                }

                completed = true;
            }
            finally
            {
                // SignalR ends a stream early both when the client cancels it and when the connection goes; only the
                // former is a stop. A lost connection has already tripped ConnectionAborted by then.
                if (!completed && !connectionAborted.IsCancellationRequested)
                {
                    subscription.StopGeneration();
                }
            }
        }
    }
}
