using System.Net;
using System.Text;
using LlmServer.Tests.Infrastructure;

namespace LlmServer.Tests.Operations;

public sealed class HttpLimitsTests
{
    [Fact]
    public async Task Cors_admits_the_configured_origins_only_and_preflight_needs_no_key()
    {
        await using var server = await TestServer.StartAsync(extraArgs:
            [$"--Auth:ApiKeys:0={AuthTests.KeyA}", "--Server:CorsOrigins:0=https://chat.example.com"]);

        using (var allowed = await server.Client.SendAsync(Preflight("https://chat.example.com")))
        {
            Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode);
            Assert.Equal("https://chat.example.com", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        }

        using (var other = await server.Client.SendAsync(Preflight("https://evil.example.net")))
        {
            Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/props", UriKind.Relative));
        request.Headers.Add("Origin", "https://chat.example.com");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AuthTests.KeyA);
        using var actual = await server.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, actual.StatusCode);
        Assert.Equal("https://chat.example.com", actual.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [Fact]
    public async Task A_request_body_over_MaxRequestBodyBytes_gets_413_in_the_OpenAI_error_shape()
    {
        await using var server = await TestServer.StartAsync(extraArgs: ["--Server:MaxRequestBodyBytes=2048"]);
        var prompt = new string('a', 4096);
        using var content = new StringContent($$"""{"model":"stories260K","prompt":"{{prompt}}","max_tokens":1}""", Encoding.UTF8, "application/json");
        using var response = await server.Client.PostAsync(new Uri("/v1/completions", UriKind.Relative), content);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", (await AuthTests.ErrorAsync(response)).GetProperty("code").GetString());
    }

    private static HttpRequestMessage Preflight(string origin)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, new Uri("/v1/chat/completions", UriKind.Relative));
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
        return request;
    }
}
