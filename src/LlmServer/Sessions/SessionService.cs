using LlmServer.ReplicaProtocol;
using Microsoft.Extensions.Options;

namespace LlmServer.Sessions;

/// <summary>Creating, reading, changing and deleting sessions, for the hub and the REST mirror alike.</summary>
internal sealed partial class SessionService
{
    public const string DefaultTitle = "New chat";

    private readonly ISessionStore _store;
    private readonly GenerationRegistry _registry;
    private readonly GenerationPump _pump;
    private readonly SessionOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<SessionService> _logger;

    public SessionService(
        ISessionStore store,
        GenerationRegistry registry,
        GenerationPump pump,
        IOptions<SessionOptions> options,
        TimeProvider timeProvider,
        ILogger<SessionService> logger)
    {
        _store = store;
        _registry = registry;
        _pump = pump;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public async Task<SessionInfo> CreateAsync(string? owner, CreateSessionRequest? request, CancellationToken cancellationToken)
    {
        var title = request?.Title is null ? DefaultTitle : SessionValidation.Title(request.Title, _options);
        SessionValidation.SystemPrompt(request?.SystemPrompt, _options);
        SessionValidation.Settings(request?.Settings);
        var now = SessionTime.Now(_timeProvider);
        var session = new StoredSession(
            SessionStoreIds.NewSessionId(_store.StoreId),
            owner,
            title,
            string.IsNullOrEmpty(request?.SystemPrompt) ? null : request.SystemPrompt,
            request?.Settings ?? new SessionSettings(),
            now,
            now,
            0);
        await _store.CreateAsync(session, cancellationToken);
        return SessionWire.Info(session, generating: false);
    }

    public async Task<SessionInfo[]> ListAsync(string? owner, CancellationToken cancellationToken)
    {
        // Read "generating" before the rows: a generation that ends in between is then reported as still running
        // (its answer may or may not be there yet), never as finished without its answer.
        var generating = _registry.RunningSessions();
        var sessions = await _store.ListAsync(owner, cancellationToken);
        return [.. sessions.Select(s => SessionWire.Info(s, generating.Contains(s.Id) || s.TurnRunning))];
    }

    public async Task<SessionDetail> GetAsync(string? owner, string? id, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(id);
        var generating = _registry.IsGenerating(id!);
        var loaded = await _store.GetConversationAsync(owner, id!, cancellationToken) ?? throw SessionException.NotFound(id!);
        return new SessionDetail(SessionWire.Info(loaded.Session, generating || loaded.Session.TurnRunning), loaded.Messages);
    }

    public Task<SessionInfo> RenameAsync(string? owner, string? id, string? title, CancellationToken cancellationToken) =>
        UpdateAsync(owner, id, new UpdateSessionRequest(Title: SessionValidation.Title(title, _options)), SettingsFields.All, cancellationToken);

    /// <summary>
    /// Changes what the request gives; null fields stay, an empty system prompt clears it. Of the settings, only the
    /// <paramref name="settingsGiven"/> fields change (the hub replaces them all; a REST PATCH merges what it names).
    /// </summary>
    public async Task<SessionInfo> UpdateAsync(
        string? owner, string? id, UpdateSessionRequest? request, SettingsFields settingsGiven, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(id);
        var title = request?.Title is null ? null : SessionValidation.Title(request.Title, _options);
        SessionValidation.SystemPrompt(request?.SystemPrompt, _options);
        SessionValidation.Settings(request?.Settings);
        var generating = _registry.IsGenerating(id!);
        var settings = request?.Settings is { } values ? new SettingsChange(values, settingsGiven) : null;
        var updated = await _store.UpdateAsync(owner, id!, title, request?.SystemPrompt, settings, SessionTime.Now(_timeProvider), cancellationToken);
        return updated is null ? throw SessionException.NotFound(id!) : SessionWire.Info(updated, generating || updated.TurnRunning);
    }

    /// <summary>
    /// Stops the session's generation, waits until its answer is stored, deletes the session and frees its KV slot;
    /// <c>busy</c> while a turn of it runs on another server (that turn's stop is that server's).
    /// </summary>
    public async Task DeleteAsync(string? owner, string? id, CancellationToken cancellationToken)
    {
        SessionValidation.SessionId(id);
        _ = await _store.GetAsync(owner, id!, cancellationToken) ?? throw SessionException.NotFound(id!);
        await _registry.StopAndWaitAsync(id!, cancellationToken);
        if (!await _store.DeleteAsync(owner, id!, cancellationToken))
        {
            throw SessionException.NotFound(id!);
        }

        _registry.Forget(id!);
        _pump.EvictQuietly(id!);
        LogSessionDeleted(id!);
    }

    [LoggerMessage(EventId = 4106, Level = LogLevel.Information, Message = "Session {SessionId} deleted.")]
    private partial void LogSessionDeleted(string sessionId);
}
