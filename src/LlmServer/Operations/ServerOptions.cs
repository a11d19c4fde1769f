namespace LlmServer.Operations;

/// <summary>Configuration section <c>Server</c>: what the web host admits and how it stops.</summary>
public sealed class ServerOptions
{
    public const string SectionName = "Server";

    /// <summary>Browser origins allowed to call the API (CORS); <c>*</c> allows any. Empty: same origin only.</summary>
    public IList<string> CorsOrigins { get; } = [];

    /// <summary>Largest request body Kestrel accepts, in bytes.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>On SIGTERM or Ctrl+C, how long running generations may take to finish before they are cancelled.</summary>
    public int DrainSeconds { get; set; } = 30;

    /// <summary>
    /// How long a streamed response waits for a client that reads nothing (its buffers full) before the connection is
    /// closed and the generation cancelled.
    /// </summary>
    public int StalledClientSeconds { get; set; } = 60;

    /// <summary>Listen on every address even though no API key is configured (anyone who reaches the port may generate).</summary>
    public bool AllowRemoteWithoutKeys { get; set; }
}
