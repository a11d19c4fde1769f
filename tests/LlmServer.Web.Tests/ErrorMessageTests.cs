using System.Text.RegularExpressions;
using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

public sealed partial class ChatPageTests
{
    [Fact]
    public async Task A_message_too_long_for_the_context_gets_a_clear_message()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);
        // Far beyond one slot's 1024 tokens.
        var tooLong = string.Join(' ', Enumerable.Repeat("Once upon a time there was a little dog.", 400));

        await chat.Prompt.FillAsync(tooLong);
        await chat.Prompt.PressAsync("Enter");

        await Expect(chat.Toast("too long for the model's context")).ToBeVisibleAsync();
        await Expect(chat.Toast("too long for the model's context")).ToHaveAttributeAsync("role", "alert");
        await Expect(chat.Page.Locator("#messages > li.streaming")).ToHaveCountAsync(0);
        await Expect(chat.Page.Locator("#send")).ToBeVisibleAsync();
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_busy_server_gets_a_clear_message_and_the_text_stays_in_the_box()
    {
        var hub = new ScriptedHub("unused", pieces: 1, refusal: "queue_full: 64 requests are already waiting");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);

        await chat.Prompt.FillAsync("Are you there?");
        await chat.Prompt.PressAsync("Enter");

        await Expect(chat.Toast("The server is busy right now")).ToBeVisibleAsync();
        await Expect(chat.Prompt).ToHaveValueAsync("Are you there?");
        await Expect(chat.Answers).ToHaveCountAsync(0);
        // The session made for the refused message is gone again.
        await Expect(chat.SessionItems).ToHaveCountAsync(0);
        Assert.Contains("DeleteSession", hub.Calls);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task An_unreachable_server_is_reported_and_the_page_connects_when_it_is_back()
    {
        await using var chat = await ChatPage.OpenAsync(
            fixture,
            beforeLoad: page => page.RouteAsync(new Regex("/hubs/chat/negotiate"), route => route.AbortAsync()),
            waitUntilConnected: false);

        await Expect(chat.Toast("The server is down or unreachable")).ToBeVisibleAsync();
        await Expect(chat.Page.Locator("#status-text")).ToHaveTextAsync("Server down");

        await chat.Page.UnrouteAllAsync();
        await chat.WaitUntilConnectedAsync();
        await Expect(chat.Toast("The server is down or unreachable")).ToHaveCountAsync(0);
    }
}
