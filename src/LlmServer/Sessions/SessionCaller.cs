using System.Security.Claims;

namespace LlmServer.Sessions;

/// <summary>Who owns a caller's sessions: the API key id when keys are on, nobody (anonymous) otherwise.</summary>
internal static class SessionCaller
{
    /// <summary>The claim the API key authentication puts the key id in.</summary>
    public const string KeyClaimType = "llmserver:key";

    public static string? Owner(ClaimsPrincipal? user) =>
        user?.FindFirst(KeyClaimType)?.Value is { Length: > 0 } key ? key : null;
}
