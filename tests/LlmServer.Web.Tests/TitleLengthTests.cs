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
    public async Task A_first_messages_title_is_never_cut_inside_an_emoji_of_several_code_points()
    {
        var hub = new ScriptedHub("Fine.", pieces: 1);
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);

        // A flag is two code points: the 47th and 48th. Only its first would fit before the "…": it goes whole.
        await chat.SendAndWaitAsync(new string('a', 46) + "🇫🇷 and more");

        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync(new string('a', 46) + "…");
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Text_pasted_beyond_the_limit_loses_its_own_end_not_the_end_of_the_title()
    {
        using var props = System.Text.Json.JsonDocument.Parse(await fixture.Server.Client.GetStringAsync(new Uri("/props", UriKind.Relative)));
        var limit = props.RootElement.GetProperty("limits").GetProperty("title_length").GetInt32();
        var hub = new ScriptedHub("unused", pieces: 1);
        var id = hub.AddSession("Short", generating: false, "Hello", "Hi");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await Expect(chat.Page.Locator("#temperature")).ToHaveAttributeAsync("min", "0");
        await chat.Page.GotoAsync($"{fixture.Server.BaseAddress}#/c/{Uri.EscapeDataString(id)}");
        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "Rename “Short”" }).ClickAsync();
        var input = chat.Page.GetByLabel("Conversation title");
        var head = new string('b', 10);
        var tail = new string('a', limit - 15);
        await input.FillAsync(head + tail);

        // 20 characters pasted after the 10th where only 5 fit: the first 5 of them stay, the title's end too.
        await input.EvaluateAsync("box => box.setSelectionRange(10, 10)");
        await chat.Page.Keyboard.InsertTextAsync("0123456789ABCDEFGHIJ");

        await Expect(input).ToHaveValueAsync(head + "01234" + tail);
        var caret = await input.EvaluateAsync<int[]>("box => [box.selectionStart, box.selectionEnd]");
        Assert.Equal([15, 15], caret);

        // An input method's text is left alone while it composes (changing it would break the composition), and
        // held once the composition ends.
        var composing = await input.EvaluateAsync<string[]>(
            """
            box => {
              const held = box.value;
              box.value = held + "XYZ";
              box.setSelectionRange(box.value.length, box.value.length);
              box.dispatchEvent(new InputEvent("input", { isComposing: true }));
              const whileComposing = box.value;
              box.dispatchEvent(new CompositionEvent("compositionend"));
              return [held, whileComposing, box.value];
            }
            """);
        Assert.Equal(composing[0] + "XYZ", composing[1]);
        Assert.Equal(composing[0], composing[2]);
        await input.PressAsync("Escape");
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Escape_in_the_rename_box_ends_the_renaming_but_leaves_the_phone_drawer_open()
    {
        var hub = new ScriptedHub("unused", pieces: 1);
        hub.AddSession("Phone title", generating: false, "Hello", "Hi");
        await using var chat = await ChatPage.OpenAsync(
            fixture, new BrowserNewContextOptions { ViewportSize = new() { Width = 360, Height = 700 } }, beforeLoad: hub.RouteAsync);
        var menu = chat.Page.GetByRole(AriaRole.Button, new() { Name = "Open the conversation list" });
        await menu.ClickAsync();
        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "Rename “Phone title”" }).ClickAsync();

        await chat.Page.GetByLabel("Conversation title").PressAsync("Escape");

        await Expect(chat.Page.GetByRole(AriaRole.Button, new() { Name = "Phone title", Exact = true })).ToBeFocusedAsync();
        await Expect(chat.Page.GetByRole(AriaRole.Button, new() { Name = "New chat" })).ToBeInViewportAsync();
        await Expect(menu).ToHaveAttributeAsync("aria-expanded", "true");
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
