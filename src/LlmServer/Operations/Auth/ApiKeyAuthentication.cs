using System.Security.Claims;

namespace LlmServer.Operations.Auth;

/// <summary>Names other features use: the scheme, and the claim that identifies the caller's key (the owner of sessions).</summary>
public static class ApiKeyAuthentication
{
    public const string SchemeName = "ApiKey";

    /// <summary>Claim with the stable id of the caller's API key (never the key itself).</summary>
    public const string KeyIdClaim = "llmserver:key";

    internal const string HubsPath = "/hubs";

    /// <summary>The caller's key id, or <c>null</c> when the request is not authenticated.</summary>
    public static string? GetApiKeyId(this ClaimsPrincipal user) => user.FindFirst(KeyIdClaim)?.Value;
}
