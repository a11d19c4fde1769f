namespace LlmServer.Router.Routing;

/// <summary>
/// What a request is routed by: a key that names where its KV cache is warm (a session, an owner, a conversation),
/// or none (then the least loaded replica). <see cref="Strict"/> keys never spill to another replica under load:
/// a SignalR connection's negotiate and its WebSocket must reach the same replica. <see cref="StrictWhenStoresSplit"/>
/// keys (a new session's owner) are strict while replicas keep sessions apart: the session is then made where the
/// owner's hub connection is, so the hub lists it.
/// </summary>
internal readonly record struct RouteKey(string? Value, bool Strict, string? SessionId, bool StrictWhenStoresSplit = false)
{
    public static RouteKey None { get; } = new(null, Strict: false, SessionId: null);

    public static RouteKey Spillable(string value) => new(value, Strict: false, SessionId: null);

    public static RouteKey ForSession(string sessionId) => new("session:" + sessionId, Strict: false, sessionId);

    public static RouteKey ForConnection(string owner) => new(owner, Strict: true, SessionId: null);

    public static RouteKey ForNewSession(string owner) => new(owner, Strict: false, SessionId: null, StrictWhenStoresSplit: true);
}
