using LlmServer.Anthropic;
using LlmServer.Errors;
using SessionPaths = LlmServer.Sessions.SessionServiceCollectionExtensions;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Errors;

/// <summary>Which front end writes a path's refusals: whole path segments, any capitalisation, the OpenAI API by default.</summary>
public sealed class RefusalWritersTests
{
    [Theory]
    [InlineData("/v1/messages", "anthropic")]
    [InlineData("/v1/messages/count_tokens", "anthropic")]
    [InlineData("/V1/Messages", "anthropic")]
    [InlineData("/v1/messagesX", "openai")]
    [InlineData("/api/sessions", "sessions")]
    [InlineData("/API/Sessions/abc/turns", "sessions")]
    [InlineData("/api/sessionsfoo", "openai")]
    [InlineData("/hubs/chat/negotiate", "sessions")]
    [InlineData("/Hubs/Chat", "sessions")]
    [InlineData("/v1/chat/completions", "openai")]
    [InlineData("/", "openai")]
    public async Task The_longest_matching_whole_prefix_writes_the_refusal(string path, string expected)
    {
        var written = new List<string>();
        var services = new ServiceCollection()
            .AddRefusalWriter(string.Empty, new Recording("openai", written))
            .AddRefusalWriter(AnthropicErrors.Path, new Recording("anthropic", written))
            .AddRefusalWriter(SessionPaths.RestPath, new Recording("sessions", written))
            .AddRefusalWriter(SessionPaths.HubPath, new Recording("sessions", written));
        using var provider = services.BuildServiceProvider();
        var context = new DefaultHttpContext();
        context.Request.Path = path;

        await provider.GetRequiredService<RefusalWriters>().WriteAsync(context, new Refusal(RefusalKind.NotFound, "Gone."), CancellationToken.None);

        Assert.Equal([expected], written);
    }

    [Fact]
    public void A_front_end_registered_twice_keeps_one_route()
    {
        var services = new ServiceCollection()
            .AddRefusalWriter(AnthropicErrors.Path, new AnthropicRefusalWriter())
            .AddRefusalWriter(AnthropicErrors.Path, new AnthropicRefusalWriter());

        Assert.Single(services, d => d.ServiceType == typeof(RefusalRoute));
        Assert.Throws<InvalidOperationException>(() => services.AddRefusalWriter(AnthropicErrors.Path, new Recording("other", [])));
    }

    private sealed class Recording(string name, List<string> written) : IRefusalWriter
    {
        public Task WriteAsync(HttpContext context, Refusal refusal, CancellationToken cancellationToken)
        {
            written.Add(name);
            return Task.CompletedTask;
        }
    }
}
