using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;

namespace LlmServer.Tests.OpenAi;

/// <summary>A server whose chat template comes from Model:ChatTemplateFile (Gemma 2's, which refuses non-alternating roles).</summary>
public sealed class TemplateFileServerFixture : IAsyncLifetime
{
    private TestServer? _server;

    public static string TemplateFile => Path.Combine(ChatTemplateFixtures.Root, "templates", "google-gemma-2-2b-it.jinja");

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() =>
        _server = await TestServer.StartAsync(extraArgs: [$"--Model:ChatTemplateFile={TemplateFile}"]);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

public sealed class ChatTemplateServerTests(TemplateFileServerFixture fixture) : IClassFixture<TemplateFileServerFixture>
{
    [Fact]
    public async Task Props_show_the_template_source_and_where_it_came_from()
    {
        using var response = await fixture.Server.Client.GetAsync(new Uri("/props", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        Assert.Equal(await File.ReadAllTextAsync(TemplateFileServerFixture.TemplateFile), root.GetProperty("chat_template").GetString());
        Assert.Equal("file", root.GetProperty("chat_template_source").GetProperty("origin").GetString());
        Assert.Equal(TemplateFileServerFixture.TemplateFile, root.GetProperty("chat_template_source").GetProperty("name").GetString());
        Assert.False(root.GetProperty("chat_template_caps").GetProperty("supports_system_role").GetBoolean());
    }

    [Fact]
    public async Task A_template_refusal_is_a_400_with_the_templates_message_and_the_server_serves_on()
    {
        var refused = new
        {
            messages = new object[] { new { role = "user", content = "Hi" }, new { role = "user", content = "Hi again" } },
            max_tokens = 4,
        };
        using (var response = await fixture.Server.Client.PostAsJsonAsync(new Uri("/v1/chat/completions", UriKind.Relative), refused))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var error = json.RootElement.GetProperty("error");
            Assert.Equal("messages: Conversation roles must alternate user/assistant/user/assistant/...", error.GetProperty("message").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal("chat_template_refused", error.GetProperty("code").GetString());
        }

        var accepted = new
        {
            messages = new object[] { new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi" } },
            max_tokens = 4,
        };
        using var ok = await fixture.Server.Client.PostAsJsonAsync(new Uri("/v1/chat/completions", UriKind.Relative), accepted);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"},{"role":"user","content":"Hi again"}]}""", 400, "messages: Conversation roles must alternate")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}""", 400, "We could not parse the JSON body of your request (")]
    [InlineData("""{"messages":"Hi"}""", 400, "Invalid type for 'messages': expected an array")]
    [InlineData("""{"model":"no-such-model","messages":[{"role":"user","content":"Hi"}]}""", 404, "no-such-model")]
    public async Task Apply_template_errors_are_in_the_openai_shape(string body, int status, string messagePart)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await fixture.Server.Client.PostAsync(new Uri("/apply-template", UriKind.Relative), content);

        Assert.Equal((HttpStatusCode)status, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains(messagePart, error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
