using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

/// <summary>With API keys on, every mapped route needs one except the few meant to stay open.</summary>
public sealed partial class RouteProtectionTests
{
    /// <summary>The chat page, health and metrics: open so the page can load and probes and scrapers need no key.</summary>
    private static readonly string[] OpenRoutes = ["/", "/health", "/health/live", "/health/ready", "/metrics"];

    [Fact]
    public async Task Every_mapped_route_but_the_page_health_and_metrics_needs_a_key_and_counts_against_the_rate_limit()
    {
        await using var server = await TestServer.StartAsync(extraArgs: [$"--Auth:ApiKeys:0={AuthTests.KeyA}", "--Limits:RequestsPerMinute=2"]);
        var routes = server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => (Method: e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods.FirstOrDefault() ?? "GET", Path: Path(e.RoutePattern.RawText!)))
            .Distinct()
            .ToList();
        Assert.Contains(routes, r => r.Path == "/tokenize");

        var open = new List<string>();
        foreach (var (method, path) in routes)
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative)) { Content = method is "GET" or "DELETE" ? null : new StringContent("{}", Encoding.UTF8, "application/json") };
            using var response = await server.Client.SendAsync(request);
            if (response.StatusCode != HttpStatusCode.Unauthorized)
            {
                open.Add(path);
            }
        }

        Assert.Equal(OpenRoutes.Order(StringComparer.Ordinal), open.Distinct().Order(StringComparer.Ordinal));

        // The tokenizer routes are API requests like any other: the key's request rate covers them.
        for (var i = 0; i < 2; i++)
        {
            using var allowed = await AuthTests.SendAsync(server, HttpMethod.Post, "/tokenize", AuthTests.KeyA, new StringContent("""{"content":"Once"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        using var limited = await AuthTests.SendAsync(server, HttpMethod.Post, "/detokenize", AuthTests.KeyA, new StringContent("""{"tokens":[1]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal("rate_limit_exceeded", (await AuthTests.ErrorAsync(limited)).GetProperty("code").GetString());
    }

    /// <summary>A request path for a route pattern: each parameter becomes <c>0</c> (valid for every constraint used).</summary>
    private static string Path(string pattern) => "/" + RouteParameter().Replace(pattern, "0").TrimStart('/');

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex RouteParameter();
}
