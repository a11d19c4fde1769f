using System.Security.Claims;
using System.Text.Encodings.Web;
using LlmServer.Errors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Auth;

/// <summary>
/// Authenticates callers by API key: <c>Authorization: Bearer KEY</c> or <c>x-api-key: KEY</c>, or for SignalR (<c>/hubs/*</c>, where
/// browsers cannot set headers on WebSockets) the <c>access_token</c> query parameter. The principal carries
/// the key's id in <see cref="ApiKeyAuthentication.KeyIdClaim"/>; with no keys configured every caller is
/// authenticated as <see cref="ApiKeyStore.AnonymousName"/>, without a key claim.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyStore keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private const string FailureItem = "llmserver:auth-failure";
    private const string ApiKeyHeader = "x-api-key";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!keys.RequiresKeys)
        {
            return Task.FromResult(Success(keyId: null));
        }

        var presented = PresentedKey();
        if (presented is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (keys.TryGetKeyId(presented, out var keyId))
        {
            return Task.FromResult(Success(keyId));
        }

        Context.Items[FailureItem] = true;
        return Task.FromResult(AuthenticateResult.Fail("Incorrect API key."));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.OnStarting(() =>
        {
            Response.Headers.WWWAuthenticate = "Bearer";
            return Task.CompletedTask;
        });
        var message = Context.Items.ContainsKey(FailureItem)
            ? "Incorrect API key provided."
            : "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key: YOUR_KEY' (SignalR: the access_token query parameter).";
        await Context.RefuseAsync(new Refusal(RefusalKind.Unauthorized, message, "invalid_api_key"), Context.RequestAborted);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
        => Context.RefuseAsync(new Refusal(RefusalKind.Forbidden, "This API key may not use this resource.", "forbidden"), Context.RequestAborted);

    private string? PresentedKey()
    {
        // Anthropic's clients send their key as x-api-key.
        var apiKey = Request.Headers[ApiKeyHeader].ToString().Trim();
        if (apiKey.Length > 0)
        {
            return apiKey;
        }

        var header = Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = header["Bearer ".Length..].Trim();
            return token.Length > 0 ? token : null;
        }

        if (Request.Path.StartsWithSegments(ApiKeyAuthentication.HubsPath) && Request.Query.TryGetValue("access_token", out var fromQuery))
        {
            var token = fromQuery.ToString();
            return token.Length > 0 ? token : null;
        }

        return null;
    }

    /// <summary>An authenticated principal; without keys (<paramref name="keyId"/> null) it carries no key claim, so nothing is owned by a key.</summary>
    private AuthenticateResult Success(string? keyId)
    {
        Claim[] claims = keyId is null
            ? [new Claim(ClaimTypes.Name, ApiKeyStore.AnonymousName)]
            : [new Claim(ApiKeyAuthentication.KeyIdClaim, keyId), new Claim(ClaimTypes.Name, keyId), new Claim(ClaimTypes.NameIdentifier, keyId)];
        var identity = new ClaimsIdentity(claims, Scheme.Name);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name));
    }
}
