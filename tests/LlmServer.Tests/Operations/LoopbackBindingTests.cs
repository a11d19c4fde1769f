using LlmServer.Operations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace LlmServer.Tests.Operations;

public sealed class LoopbackBindingTests
{
    [Theory]
    [InlineData("http://0.0.0.0:5000", "http://127.0.0.1:5000")]
    [InlineData("http://+:5000", "http://127.0.0.1:5000")]
    [InlineData("http://*:5000/", "http://127.0.0.1:5000/")]
    [InlineData("http://[::]:5000", "http://127.0.0.1:5000")]
    [InlineData("https://server.example.com:443", "https://127.0.0.1:443")]
    [InlineData("http://localhost:5000", "http://localhost:5000")]
    [InlineData("http://127.0.0.1:5000", "http://127.0.0.1:5000")]
    [InlineData("http://[::1]:5000", "http://[::1]:5000")]
    public void Addresses_other_than_loopback_move_to_127_0_0_1(string configured, string expected)
    {
        var builder = Builder("--urls", $"{configured};http://localhost:6000");
        var changes = LoopbackBinding.RestrictToLoopback(builder);

        Assert.Equal($"{expected};http://localhost:6000", builder.Configuration[WebHostDefaults.ServerUrlsKey]);
        Assert.Equal(configured == expected ? 0 : 1, changes.Count);
    }

    [Fact]
    public void Http_ports_and_kestrel_endpoints_are_covered_too()
    {
        var builder = Builder("--http_ports", "8080", "--Kestrel:Endpoints:Main:Url", "http://0.0.0.0:9090");
        LoopbackBinding.RestrictToLoopback(builder);

        Assert.Equal("http://127.0.0.1:8080", builder.Configuration[WebHostDefaults.ServerUrlsKey]);
        Assert.Equal("http://127.0.0.1:9090", builder.Configuration["Kestrel:Endpoints:Main:Url"]);
    }

    /// <summary>A builder that reads only these arguments (not the server's appsettings.json beside the tests).</summary>
    private static WebApplicationBuilder Builder(params string[] args) =>
        WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = Path.GetTempPath() });
}
