namespace LlmServer.ReplicaProtocol;

/// <summary>
/// The agreement between a replica and the router about where a session lives, compiled into both. Every sessions
/// database has an id of its own (<see cref="Length"/> lowercase hex characters, made when its schema is created);
/// a replica reports it in its readiness (<see cref="ReadinessField"/>) and begins every session id it creates with
/// it (<c>{store}-{unique}</c>). Replicas that report one store share their sessions; a session id names the store,
/// so the router finds the replicas that can serve it without having seen it created.
/// </summary>
internal static class SessionStoreIds
{
    public const string ReadinessField = "sessionStore";

    public const int Length = 12;

    public static string NewSessionId(string storeId) => $"{storeId}-{Guid.CreateVersion7():N}";

    /// <summary>The store named by <paramref name="sessionId"/>; null for an id without one (made before stores had ids).</summary>
    public static string? StoreOf(string sessionId) =>
        sessionId.Length > Length && sessionId[Length] == '-' && IsStoreId(sessionId.AsSpan(0, Length)) ? sessionId[..Length] : null;

    public static bool IsStoreId(ReadOnlySpan<char> text)
    {
        if (text.Length != Length)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigitLower(c))
            {
                return false;
            }
        }

        return true;
    }
}
