using LlmServer.Web.Tests.Infrastructure;
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
}
