using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace LlmServer.Router.Routing;

/// <summary>
/// Finds a request's <see cref="RouteKey"/>: sessions by id, SignalR connections by owner, OpenAI-style
/// conversations by <c>user</c> or their leading messages. The one place that knows the replicas' URL space.
/// </summary>
internal static class RouteKeyResolver
{
    /// <summary>The cookie that keeps a browser without an API key on one replica.</summary>
    public const string AffinityCookie = "llmserver-affinity";

    /// <summary>Bodies larger than this are proxied without a conversation key (they are never buffered whole).</summary>
    public const int MaxKeyedBodyBytes = 1 << 20;

    private static readonly PathString SessionsPath = new("/api/sessions");
    private static readonly PathString HubsPath = new("/hubs");
    private static readonly string[] ConversationPaths = ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"];

    public static async ValueTask<RouteKey> ResolveAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments(SessionsPath, out var rest))
        {
            var id = rest.Value?.Split('/', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            return id is not null ? RouteKey.ForSession(id) : Owner(context) is { } owner ? RouteKey.ForNewSession(owner) : RouteKey.None;
        }

        if (path.StartsWithSegments(HubsPath))
        {
            return RouteKey.ForConnection(Owner(context) ?? IssueAffinityCookie(context));
        }

        if (HttpMethods.IsPost(context.Request.Method) && ConversationPaths.Any(p => path.Equals(p, StringComparison.OrdinalIgnoreCase)))
        {
            return await ConversationKeyAsync(context, cancellationToken) is { } conversation ? RouteKey.Spillable(conversation) : RouteKey.None;
        }

        return RouteKey.None;
    }

    /// <summary>The caller's identity: a hash of its API key (header or SignalR's query), else the affinity cookie.</summary>
    private static string? Owner(HttpContext context)
    {
        var request = context.Request;
        string? key = null;
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            key = authorization["Bearer ".Length..].Trim();
        }
        else if (request.Headers.TryGetValue("x-api-key", out var apiKey) && !string.IsNullOrWhiteSpace(apiKey))
        {
            key = apiKey.ToString();
        }
        else if (request.Query.TryGetValue("access_token", out var token) && !string.IsNullOrWhiteSpace(token))
        {
            key = token.ToString();
        }

        if (!string.IsNullOrEmpty(key))
        {
            return "key:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)), 0, 16);
        }

        return request.Cookies.TryGetValue(AffinityCookie, out var cookie) && !string.IsNullOrWhiteSpace(cookie) ? "cookie:" + cookie : null;
    }

    private static string IssueAffinityCookie(HttpContext context)
    {
        var value = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));

        // Set when the response starts, so a retry on another replica (which clears the response) keeps it.
        context.Response.OnStarting(() =>
        {
            context.Response.Cookies.Append(AffinityCookie, value, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Lax, Path = "/", IsEssential = true });
            return Task.CompletedTask;
        });
        return "cookie:" + value;
    }

    /// <summary>
    /// A conversation's key: its <c>user</c>, else a hash of its leading messages (the system prompt and the first
    /// user message, which every later turn repeats), else of the prompt's start.
    /// </summary>
    private static async ValueTask<string?> ConversationKeyAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var request = context.Request;
        if (request.ContentLength is null or > MaxKeyedBodyBytes)
        {
            return null;
        }

        // The body is read here and again by the forwarder (and by a retry): buffering makes it rewindable.
        request.EnableBuffering(bufferThreshold: 64 * 1024, bufferLimit: MaxKeyedBodyBytes);
        try
        {
            using var document = await JsonDocument.ParseAsync(request.Body, default, cancellationToken);
            return KeyOf(document.RootElement);
        }
        catch (JsonException)
        {
            return null;
        }
        finally
        {
            request.Body.Position = 0;
        }
    }

    internal static string? KeyOf(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        if (body.TryGetProperty("user", out var user) && user.ValueKind == JsonValueKind.String && user.GetString() is { Length: > 0 } name)
        {
            return "user:" + name;
        }

        var leading = new StringBuilder();
        if (body.TryGetProperty("system", out var system))
        {
            leading.Append(system.GetRawText()).Append('\n');
        }

        if (body.TryGetProperty("instructions", out var instructions))
        {
            leading.Append(instructions.GetRawText()).Append('\n');
        }

        var messages = body.TryGetProperty("messages", out var m) ? m : body.TryGetProperty("input", out var i) ? i : default;
        if (messages.ValueKind == JsonValueKind.Array)
        {
            foreach (var message in messages.EnumerateArray())
            {
                leading.Append(message.GetRawText()).Append('\n');
                if (message.ValueKind == JsonValueKind.Object && message.TryGetProperty("role", out var role) && role.ValueEquals("user"))
                {
                    break;
                }
            }
        }
        else if (messages.ValueKind == JsonValueKind.String)
        {
            leading.Append(messages.GetString());
        }
        else if (body.TryGetProperty("prompt", out var prompt))
        {
            var text = prompt.GetRawText();
            leading.Append(text.AsSpan(0, Math.Min(text.Length, 1024)));
        }

        return leading.Length == 0 ? null : "conversation:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(leading.ToString())), 0, 16);
    }
}
