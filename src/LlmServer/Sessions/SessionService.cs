using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>Creating, reading, changing and deleting sessions, for the hub and the REST mirror alike.</summary>
internal sealed class SessionService
{
    public const string DefaultTitle = "New chat";

    private readonly SessionStore _store;
    private readonly SessionGenerationManager _generations;
    private readonly SessionOptions _options;
    private readonly TimeProvider _timeProvider;

    public SessionService(SessionStore store, SessionGenerationManager generations, IOptions<SessionOptions> options, TimeProvider timeProvider)
    {
        _store = store;
        _generations = generations;
        _options = options.Value;
        _timeProvider = timeProvider;
    }

    public async Task<SessionInfo> CreateAsync(string? owner, CreateSessionRequest? request, CancellationToken cancellationToken)
    {
        var title = request?.Title is null ? DefaultTitle : SessionValidation.Title(request.Title, _options);
        SessionValidation.SystemPrompt(request?.SystemPrompt, _options);
        SessionValidation.Settings(request?.Settings);
        var now = _timeProvider.GetUtcNow();
        var session = new StoredSession(
            Guid.CreateVersion7().ToString("N"),
            owner,
            title,
            string.IsNullOrEmpty(request?.SystemPrompt) ? null : request.SystemPrompt,
            request?.Settings ?? new SessionSettings(),
            now,
            now,
            0);
        await _store.CreateAsync(session, cancellationToken);
        return ToInfo(session);
    }

    public async Task<SessionInfo[]> ListAsync(string? owner, CancellationToken cancellationToken)
    {
        var sessions = await _store.ListAsync(owner, cancellationToken);
        return [.. sessions.Select(ToInfo)];
    }

    public async Task<SessionDetail> GetAsync(string? owner, string? id, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(id);
        var loaded = await _store.GetWithMessagesAsync(owner, id!, cancellationToken) ?? throw SessionException.NotFound(id!);
        return new SessionDetail(ToInfo(loaded.Session), loaded.Messages);
    }

    public Task<SessionInfo> RenameAsync(string? owner, string? id, string? title, CancellationToken cancellationToken) =>
        UpdateAsync(owner, id, new UpdateSessionRequest(Title: SessionValidation.Title(title, _options)), cancellationToken);

    /// <summary>Changes what the request gives; null fields stay, an empty system prompt clears it.</summary>
    public async Task<SessionInfo> UpdateAsync(string? owner, string? id, UpdateSessionRequest? request, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(id);
        var title = request?.Title is null ? null : SessionValidation.Title(request.Title, _options);
        SessionValidation.SystemPrompt(request?.SystemPrompt, _options);
        SessionValidation.Settings(request?.Settings);
        var updated = await _store.UpdateAsync(owner, id!, title, request?.SystemPrompt, request?.Settings, _timeProvider.GetUtcNow(), cancellationToken);
        return updated is null ? throw SessionException.NotFound(id!) : ToInfo(updated);
    }

    public Task DeleteAsync(string? owner, string? id, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(id);
        return _generations.DeleteAsync(owner, id!, cancellationToken);
    }

    private SessionInfo ToInfo(StoredSession session) => new(
        session.Id,
        session.Title,
        session.SystemPrompt,
        session.Settings,
        session.CreatedAt,
        session.UpdatedAt,
        session.MessageCount,
        _generations.IsGenerating(session.Id));
}
