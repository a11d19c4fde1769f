using System.Net;

namespace LlmServer.Operations;

/// <summary>
/// Without API keys the server must not be reachable from other machines: every configured listen address
/// (<c>urls</c>, <c>http_ports</c>, <c>Kestrel:Endpoints:*:Url</c>) that is not loopback is moved to 127.0.0.1.
/// </summary>
internal static class LoopbackBinding
{
    /// <summary>Rewrites the listen addresses; returns each change as "before -> after".</summary>
    public static IReadOnlyList<string> RestrictToLoopback(WebApplicationBuilder builder)
    {
        var changes = new List<string>();
        var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey];
        if (string.IsNullOrWhiteSpace(urls) && builder.Configuration[WebHostDefaults.HttpPortsKey] is { Length: > 0 } ports)
        {
            urls = string.Join(';', ports.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => $"http://*:{p}"));
        }

        if (!string.IsNullOrWhiteSpace(urls))
        {
            var rewritten = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(u => ToLoopback(u, changes)).ToArray();
            builder.WebHost.UseUrls(rewritten);
        }

        foreach (var endpoint in builder.Configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Url"] is { Length: > 0 } url)
            {
                builder.Configuration[$"{endpoint.Path}:Url"] = ToLoopback(url, changes);
            }
        }

        return changes;
    }

    public static bool IsLoopback(IPAddress? address)
        => address is null || IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);

    private static string ToLoopback(string url, List<string> changes)
    {
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd < 0)
        {
            return url;
        }

        var authorityStart = schemeEnd + 3;
        var pathStart = url.IndexOf('/', authorityStart);
        var authority = pathStart < 0 ? url[authorityStart..] : url[authorityStart..pathStart];
        var hostLength = authority.StartsWith('[')
            ? authority.IndexOf(']', StringComparison.Ordinal) + 1
            : authority.LastIndexOf(':') is var colon and >= 0 ? colon : authority.Length;
        var host = authority[..hostLength];
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip)))
        {
            return url;
        }

        var loopback = string.Concat(url.AsSpan(0, authorityStart), "127.0.0.1", authority.AsSpan(hostLength), pathStart < 0 ? string.Empty : url[pathStart..]);
        changes.Add($"{url} -> {loopback}");
        return loopback;
    }
}
