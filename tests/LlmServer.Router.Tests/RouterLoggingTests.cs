using System.Net;
using LlmServer.Router.Hosting;
using LlmServer.Router.Tests.Infrastructure;
using LlmServer.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmServer.Router.Tests;

public sealed class RouterLoggingTests
{
    [Fact]
    public async Task By_default_the_router_logs_no_line_per_request()
    {
        await using var app = RouterApplication.Build(["--Router:Replicas:0=http://127.0.0.1:1"]);
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();

        Assert.False(loggers.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Information));
        Assert.False(loggers.CreateLogger("Yarp.ReverseProxy.Forwarder.HttpForwarder").IsEnabled(LogLevel.Information));
        Assert.True(loggers.CreateLogger("LlmServer.Router.Replicas.ReplicaFailoverMiddleware").IsEnabled(LogLevel.Information));
    }

    [Fact]
    public async Task An_access_token_in_a_logged_url_is_redacted()
    {
        var capture = new CapturingLoggerProvider();
        using var replica = new ClosedPort();
        await using var app = RouterApplication.Build(
            ["--urls", ServerProcess.AnyLoopbackPort, "--Logging:LogLevel:Default=Information", "--Logging:LogLevel:Microsoft.AspNetCore=Information",
             "--Logging:LogLevel:Yarp=Information", $"--Router:Replicas:0={replica.Address}"],
            builder => builder.Logging.AddProvider(capture));
        await app.StartAsync();
        using (var client = new HttpClient { BaseAddress = new Uri(RouterHost.ListeningAddress(app)) })
        {
            using var response = await client.PostAsync(new Uri("/hubs/chat/negotiate?negotiateVersion=1&access_token=SECRET-KEY-123&x=1", UriKind.Relative), null);
            Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
        }

        await app.StopAsync();

        Assert.Contains(capture.Lines, line => line.Contains("access_token=[redacted]&x=1", StringComparison.Ordinal));
        Assert.DoesNotContain(capture.Lines, line => line.Contains("SECRET-KEY-123", StringComparison.Ordinal));
    }
}
