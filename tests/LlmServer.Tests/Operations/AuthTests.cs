using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Operations;

public sealed class AuthTests
{
    internal const string KeyA = "test-key-aaaaaaaaaaaaaaaa";
    internal const string KeyB = "test-key-bbbbbbbbbbbbbbbb";

    [Fact]
    public async Task Api_needs_a_key_and_answers_401_in_the_OpenAI_error_shape()
    {
        var keysFile = Path.GetTempFileName();
        await File.WriteAllLinesAsync(keysFile, ["# operators' keys", KeyB, string.Empty]);
        try
        {
            await using var server = await TestServer.StartAsync(extraArgs: [$"--Auth:ApiKeys:0={KeyA}", $"--Auth:ApiKeysFile={keysFile}"]);

            using (var missing = await server.Client.GetAsync(new Uri("/props", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
                Assert.Equal("Bearer", missing.Headers.WwwAuthenticate.Single().Scheme);
                var error = await ErrorAsync(missing);
                Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
                Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
                Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
                Assert.Contains("API key", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            }

            using (var wrong = await SendAsync(server, HttpMethod.Get, "/props", "not-a-key-at-all-123456"))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
                Assert.Contains("Incorrect API key", (await ErrorAsync(wrong)).GetProperty("message").GetString(), StringComparison.Ordinal);
            }

            using (var fromList = await SendAsync(server, HttpMethod.Get, "/props", KeyA))
            {
                Assert.Equal(HttpStatusCode.OK, fromList.StatusCode);
            }

            using (var fromFile = await SendAsync(server, HttpMethod.Get, "/props", KeyB))
            {
                Assert.Equal(HttpStatusCode.OK, fromFile.StatusCode);
            }

            // Every API prefix is behind the key, whichever feature serves it.
            foreach (var path in new[] { "/v1/models", "/api/sessions", "/hubs/chat/negotiate?negotiateVersion=1" })
            {
                using var response = await server.Client.PostAsync(new Uri(path, UriKind.Relative), null);
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            }

            // Browsers cannot put headers on a WebSocket, so the hubs also take the key as access_token.
            using (var hub = await server.Client.PostAsync(new Uri($"/hubs/chat/negotiate?negotiateVersion=1&access_token={KeyA}", UriKind.Relative), null))
            {
                Assert.NotEqual(HttpStatusCode.Unauthorized, hub.StatusCode);
            }

            // ...but only there: a key in the query string of a REST call would end up in access logs.
            using (var queryOnRest = await server.Client.GetAsync(new Uri($"/props?access_token={KeyA}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, queryOnRest.StatusCode);
            }

            // Probes, metrics and the chat page stay reachable without a key.
            foreach (var path in new[] { "/health/live", "/health/ready", "/health", "/metrics" })
            {
                using var response = await server.Client.GetAsync(new Uri(path, UriKind.Relative));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }
        finally
        {
            File.Delete(keysFile);
        }
    }

    [Fact]
    public async Task Without_keys_the_server_listens_on_loopback_only()
    {
        await using var server = await TestServer.StartAsync(extraArgs: ["--urls", "http://0.0.0.0:0"]);
        var addresses = server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        Assert.NotEmpty(addresses);
        Assert.All(addresses, address => Assert.StartsWith("http://127.0.0.1:", address, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Short_api_keys_are_refused_at_start()
    {
        var exception = await Assert.ThrowsAnyAsync<Exception>(() => TestServer.StartAsync(extraArgs: ["--Auth:ApiKeys:0=short"]));
        Assert.Contains("at least 16", exception.ToString(), StringComparison.Ordinal);
    }

    internal static async Task<HttpResponseMessage> SendAsync(
        TestServer server, HttpMethod method, string path, string key, HttpContent? content = null, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await server.Client.SendAsync(request, completion);
    }

    internal static async Task<JsonElement> ErrorAsync(HttpResponseMessage response)
    {
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("error").Clone();
    }
}
