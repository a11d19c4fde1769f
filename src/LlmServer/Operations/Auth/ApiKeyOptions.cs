namespace LlmServer.Operations.Auth;

/// <summary>Configuration section <c>Auth</c>.</summary>
public sealed class ApiKeyOptions
{
    public const string SectionName = "Auth";

    /// <summary>Accepted API keys. With none here and no <see cref="ApiKeysFile"/>, the server needs no key (and listens on loopback only).</summary>
    public IList<string> ApiKeys { get; } = [];

    /// <summary>A file of API keys, one per line; blank lines and lines starting with <c>#</c> are skipped.</summary>
    public string? ApiKeysFile { get; set; }

    /// <summary>Path prefixes that need a key; <c>null</c> means <see cref="DefaultProtectedPaths"/>.</summary>
    public IList<string>? ProtectedPaths { get; set; }

    /// <summary>
    /// The API, the sessions API, the SignalR hubs, <c>/props</c> and llama-server's tokenizer and template routes
    /// (they run the model's tokenizer and template); health, metrics and the chat page stay open.
    /// </summary>
    public static IReadOnlyList<string> DefaultProtectedPaths { get; } = ["/v1", "/api", "/hubs", "/props", "/tokenize", "/detokenize", "/apply-template"];
}
