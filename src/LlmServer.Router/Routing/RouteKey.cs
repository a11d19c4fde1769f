namespace LlmServer.Router.Routing;

/// <summary>
/// What a request is routed by: a key that names where its KV cache is warm (a session, an owner, a conversation),
/// or none (then the least loaded replica). <see cref="Strict"/> keys never spill to another replica under load:
/// a SignalR connection's negotiate and its WebSocket must reach the same replica.
/// </summary>
internal readonly record struct RouteKey(string? Value, bool Strict, string? SessionId)
{
    public static RouteKey None { get; } = new(null, Strict: false, SessionId: null);

    public static RouteKey Spillable(string value) => new(value, Strict: false, SessionId: null);

    public static RouteKey ForSession(string sessionId) => new("session:" + sessionId, Strict: false, sessionId);

    public static RouteKey ForConnection(string owner) => new(owner, Strict: true, SessionId: null);
}
