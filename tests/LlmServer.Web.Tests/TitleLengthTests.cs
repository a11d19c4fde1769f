using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

/// <summary>Titles held to the server's limit as the server counts characters (an emoji is one, not two UTF-16 units).</summary>
public sealed partial class ChatPageTests
{
    [Fact]
    public async Task A_title_takes_as_many_emoji_as_the_server_allows_and_is_never_cut_inside_one()
    {
        using var props = System.Text.Json.JsonDocument.Parse(await fixture.Server.Client.GetStringAsync(new Uri("/props", UriKind.Relative)));
        var limit = props.RootElement.GetProperty("limits").GetProperty("title_length").GetInt32();
        await using var chat = await ChatPage.OpenAsync(fixture);
        // The settings' ranges show once the page has read the server's limits.
        await Expect(chat.Page.Locator("#temperature")).ToHaveAttributeAsync("min", "0");
        await chat.SetSettingsAsync(maxTokens: 8);

        // A first message's title is its first 47 characters and "…": the emoji at the cut stays whole.
        var first = new string('a', 46) + "😀😀😀 " + Guid.NewGuid().ToString("N")[..6];
        await chat.SendAndWaitAsync(first);
        var id = await chat.CurrentSessionIdAsync();
        var title = new string('a', 46) + "😀…";
        Assert.Equal(title, (await chat.StoredSessionAsync(id)).GetProperty("info").GetProperty("title").GetString());

        await chat.Page.GetByRole(AriaRole.Button, new() { Name = $"Rename “{title}”" }).ClickAsync();
        var input = chat.Page.GetByLabel("Conversation title");
        await input.FillAsync(string.Concat(Enumerable.Repeat("😀", limit + 50)));
        var allowed = string.Concat(Enumerable.Repeat("😀", limit));
        await Expect(input).ToHaveValueAsync(allowed);
        await input.PressAsync("Enter");

        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync(allowed);
        // Ended from the keyboard: focus is on the conversation again, not lost with the box.
        await Expect(chat.Page.GetByRole(AriaRole.Button, new() { Name = allowed, Exact = true })).ToBeFocusedAsync();
        Assert.Equal(allowed, (await chat.StoredSessionAsync(id)).GetProperty("info").GetProperty("title").GetString());
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Closing_the_phone_drawer_with_escape_puts_focus_back_on_its_button()
    {
        await using var chat = await ChatPage.OpenAsync(fixture, new BrowserNewContextOptions { ViewportSize = new() { Width = 360, Height = 700 } });
        var menu = chat.Page.GetByRole(AriaRole.Button, new() { Name = "Open the conversation list" });
        await menu.ClickAsync();
        await Expect(chat.Page.GetByRole(AriaRole.Button, new() { Name = "New chat" })).ToBeFocusedAsync();

        await chat.Page.Keyboard.PressAsync("Escape");

        await Expect(chat.Page.GetByRole(AriaRole.Button, new() { Name = "New chat" })).Not.ToBeInViewportAsync();
        await Expect(menu).ToBeFocusedAsync();
        await Expect(menu).ToHaveAttributeAsync("aria-expanded", "false");
        chat.AssertNoPageErrors();
    }
}
