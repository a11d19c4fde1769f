using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

public sealed partial class ChatPageTests
{
    [Fact]
    public async Task A_thinking_answer_shows_its_reasoning_in_a_section_open_while_it_streams_and_collapsed_when_done()
    {
        var hub = ScriptedHub.GatedThinking(["The user ", "greets me."], "Hello ", "there.");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.SendAsync("Hi");
        var thinking = chat.LastAnswer.Locator(".msg-reasoning");
        var thought = thinking.Locator(".reasoning-body");
        var answer = chat.LastAnswer.Locator(".msg-body");

        // Thinking streams first, open above the (still empty) answer.
        hub.Release();
        await Expect(thought).ToHaveTextAsync("The user");
        await Expect(thinking).ToHaveJSPropertyAsync("open", true);
        await Expect(thinking.Locator("summary")).ToHaveTextAsync("Thinking");
        hub.Release();
        await Expect(thought).ToHaveTextAsync("The user greets me.");

        // Then the answer, below it; the section stays open while it streams.
        hub.Release();
        await Expect(answer).ToContainTextAsync("Hello");
        await Expect(chat.LastAnswer.Locator(".msg-reasoning + .msg-body")).ToHaveCountAsync(1);
        await Expect(thinking).ToHaveJSPropertyAsync("open", true);
        await chat.ScreenshotAsync("reasoning-streaming");

        // Done: collapsed, the answer alone in view; a click opens it.
        hub.Release();
        hub.Release();
        await chat.WaitForAnswerAsync();
        await Expect(answer).ToHaveTextAsync("Hello there.");
        await Expect(thinking).ToHaveJSPropertyAsync("open", false);
        await Expect(thought).ToBeHiddenAsync();
        await thinking.Locator("summary").ClickAsync();
        await Expect(thought).ToBeVisibleAsync();
        await Expect(thought).ToHaveTextAsync("The user greets me.");
        await chat.ScreenshotAsync("reasoning-done");

        // After a reload, from the stored message: collapsed, the same thinking.
        await chat.ReloadAsync();
        await Expect(answer).ToHaveTextAsync("Hello there.");
        await Expect(thinking).ToHaveJSPropertyAsync("open", false);
        await Expect(thought).ToHaveTextAsync("The user greets me.");
        await Expect(chat.Page.Locator("#messages .msg-reasoning")).ToHaveCountAsync(1);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_thinking_section_closed_while_the_answer_streams_stays_closed_through_switching_conversations_and_back()
    {
        var hub = ScriptedHub.GatedThinking(["The user greets me."], "Hello ", "there.");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.SendAsync("Hi");
        var thinking = chat.LastAnswer.Locator(".msg-reasoning");
        hub.Release();
        hub.Release();
        await Expect(chat.LastAnswer.Locator(".msg-body")).ToContainTextAsync("Hello");
        await Expect(thinking).ToHaveJSPropertyAsync("open", true);

        await thinking.Locator("summary").ClickAsync();
        await Expect(thinking).ToHaveJSPropertyAsync("open", false);

        // Away and back while it still streams: the messages are drawn anew, the section as the person left it.
        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "New chat" }).ClickAsync();
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("New chat");
        await chat.SessionItems.First.Locator(".session-open").ClickAsync();
        await Expect(chat.LastAnswer.Locator(".msg-body")).ToContainTextAsync("Hello");
        await Expect(thinking).ToHaveCountAsync(1);
        await Expect(thinking).ToHaveJSPropertyAsync("open", false);

        hub.Release();
        hub.Release();
        await chat.WaitForAnswerAsync();
        await Expect(thinking).ToHaveJSPropertyAsync("open", false);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Reasoning_that_holds_markup_shows_as_text()
    {
        const string Markup = "<img src=x onerror=\"window.__reasoningRan = true\">";
        var hub = ScriptedHub.GatedThinking([Markup], "Fine.");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.SendAsync("Hi");
        var thought = chat.LastAnswer.Locator(".msg-reasoning .reasoning-body");

        // Streaming, then from the stored message after a reload: the characters, never an element.
        hub.Release();
        await Expect(thought).ToHaveTextAsync(Markup);
        await Expect(chat.LastAnswer.Locator("img")).ToHaveCountAsync(0);
        Assert.False(await chat.Page.EvaluateAsync<bool>("() => window.__reasoningRan === true"));
        hub.Release();
        hub.Release();
        await chat.WaitForAnswerAsync();
        await chat.ReloadAsync();
        await Expect(thought).ToHaveTextAsync(Markup);
        await Expect(chat.Page.Locator("#messages img")).ToHaveCountAsync(0);
        Assert.False(await chat.Page.EvaluateAsync<bool>("() => window.__reasoningRan === true"));
        chat.AssertNoPageErrors();
    }
}
