using System.Text;
using System.Text.Json;
using LlmServer.Router.Routing;
using Microsoft.AspNetCore.Http;

namespace LlmServer.Router.Tests;

public sealed class RouteKeyResolverTests
{
    [Fact]
    public void The_user_field_names_the_conversation()
    {
        Assert.Equal("user:alice", Key("""{"user":"alice","messages":[{"role":"user","content":"hi"}]}"""));
    }

    [Fact]
    public void Later_turns_of_a_chat_share_the_first_turns_key()
    {
        var first = Key("""{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story."}]}""");
        var second = Key("""{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell me a story."},{"role":"assistant","content":"Once."},{"role":"user","content":"More."}]}""");
        var other = Key("""{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Something else."}]}""");
        Assert.NotNull(first);
        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public void Anthropic_system_and_prompts_are_keyed_too()
    {
        Assert.NotNull(Key("""{"system":"s","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"""));
        Assert.NotNull(Key("""{"prompt":"Once upon a time"}"""));
        Assert.Null(Key("""{"model":"x"}"""));
        Assert.Null(Key("[1,2]"));
    }

    [Theory]
    [InlineData("/api/sessions/abc/messages", "session:abc")]
    [InlineData("/api/sessions/abc", "session:abc")]
    public async Task Session_calls_are_keyed_by_the_session(string path, string expected)
    {
        var context = new DefaultHttpContext();
        context.Request.Path = path;
        context.Request.Method = "POST";
        var key = await RouteKeyResolver.ResolveAsync(context, CancellationToken.None);
        Assert.Equal(expected, key.Value);
        Assert.Equal("abc", key.SessionId);
        Assert.False(key.Strict);
    }

    [Fact]
    public async Task Hub_connections_stick_to_their_owner_strictly()
    {
        var withKey = new DefaultHttpContext();
        withKey.Request.Path = "/hubs/chat/negotiate";
        withKey.Request.Headers.Authorization = "Bearer sk-1";
        var viaQuery = new DefaultHttpContext();
        viaQuery.Request.Path = "/hubs/chat";
        viaQuery.Request.QueryString = new QueryString("?id=x&access_token=sk-1");
        var a = await RouteKeyResolver.ResolveAsync(withKey, CancellationToken.None);
        var b = await RouteKeyResolver.ResolveAsync(viaQuery, CancellationToken.None);
        Assert.True(a.Strict);
        Assert.Equal(a, b);
        Assert.DoesNotContain("sk-1", a.Value, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_chat_body_is_keyed_and_left_readable_for_the_forwarder()
    {
        const string body = """{"user":"bob","messages":[{"role":"user","content":"hi"}]}""";
        var context = new DefaultHttpContext();
        context.Request.Path = "/v1/chat/completions";
        context.Request.Method = "POST";
        var bytes = Encoding.UTF8.GetBytes(body);
        context.Request.Body = new MemoryStream(bytes);
        context.Request.ContentLength = bytes.Length;
        var key = await RouteKeyResolver.ResolveAsync(context, CancellationToken.None);
        Assert.Equal("user:bob", key.Value);
        Assert.Equal(body, await new StreamReader(context.Request.Body).ReadToEndAsync());
    }

    private static string? Key(string json)
    {
        using var document = JsonDocument.Parse(json);
        return RouteKeyResolver.KeyOf(document.RootElement);
    }
}
