namespace LlmServer.ReplicaProtocol;

/// <summary>
/// The one agreement between a server replica and the router about a drain, compiled into both: a replica that
/// refuses a request because it is draining names the refusal with this response header, so the router can send the
/// request to another replica (the replica did no work for it) and route no new sessions there.
/// </summary>
internal static class DrainMarker
{
    public const string Header = "X-LlmServer-Draining";

    public const string Value = "1";
}
