using System.Text.RegularExpressions;
using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

public sealed partial class ChatPageTests
{
    [Fact]
    public async Task A_server_that_answers_401_gets_the_api_key_the_page_asks_for_and_keeps()
    {
        const string Key = "test-key-123";
        var presented = new List<string?>();
        // The hub's negotiation stands in for a server with keys on: 401 unless the request carries the key.
        Task Guard(IPage page) => page.RouteAsync(new Regex("/hubs/chat/negotiate"), async route =>
        {
            var authorization = route.Request.Headers.GetValueOrDefault("authorization");
            presented.Add(authorization);
            if (authorization == $"Bearer {Key}")
            {
                await route.ContinueAsync();
            }
            else
            {
                await route.FulfillAsync(new() { Status = 401, ContentType = "application/json", Body = """{"error":{"message":"You didn't provide an API key.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}""" });
            }
        });
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: Guard, waitUntilConnected: false);

        var dialog = chat.Page.GetByRole(AriaRole.Dialog, new() { Name = "API key" });
        await Expect(dialog).ToBeVisibleAsync();
        await dialog.GetByLabel("Key").FillAsync(Key);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Connect" }).ClickAsync();
        await chat.WaitUntilConnectedAsync();
        Assert.Equal(Key, await chat.Page.EvaluateAsync<string>("() => localStorage.getItem('llmserver.apiKey')"));

        await chat.ReloadAsync();
        await Expect(dialog).ToBeHiddenAsync();
        Assert.Equal($"Bearer {Key}", presented[^1]);
        Assert.Null(presented[0]);
    }

    [Fact]
    public async Task With_api_keys_on_the_page_asks_for_the_key_then_chats()
    {
        const string Key = "web-test-key-0123456789abcdef";
        var data = Directory.CreateTempSubdirectory("llmserver-web-keys-");
        try
        {
            await using var server = await LlmServer.Tests.Infrastructure.TestServer.StartAsync(extraArgs:
            [
                "--Auth:ApiKeys:0=" + Key,
                "--Sessions:Database=" + Path.Combine(data.FullName, "sessions.db"),
            ]);
            await using var chat = await ChatPage.OpenAsync(fixture.Browser, server, waitUntilConnected: false);

            var dialog = chat.Page.GetByRole(AriaRole.Dialog, new() { Name = "API key" });
            await dialog.GetByLabel("Key").FillAsync(Key);
            await dialog.GetByRole(AriaRole.Button, new() { Name = "Connect" }).ClickAsync();
            await chat.WaitUntilConnectedAsync();
            await Expect(chat.Page.Locator("#model-name")).ToHaveTextAsync("stories260K");

            await chat.SetSettingsAsync(maxTokens: 8);
            await chat.SendAndWaitAsync(StoryPrompt);
            await Expect(chat.Page.Locator("#session-list .session-title")).ToHaveTextAsync([StoryPrompt]);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }
}
