using LlmServer.Web.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

public sealed partial class ChatPageTests
{
    private const string ContextDividerText = "Earlier messages are outside the model's context";

    [Fact]
    public async Task A_divider_shows_where_the_models_context_starts()
    {
        // The "server" reports that each answer saw only the two messages before it: from the third turn on, the
        // first messages are outside the model's context.
        var hub = new ScriptedHub("A short answer.", pieces: 3, contextStart: answerIndex => Math.Max(0, answerIndex - 3));
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);

        await chat.SendAndWaitAsync("First question");
        await chat.SendAndWaitAsync("Second question");
        await Expect(chat.ContextDivider).ToHaveCountAsync(0);

        // Drawn from the done event...
        await chat.SendAndWaitAsync("Third question");
        await Expect(chat.ContextDivider).ToHaveCountAsync(1);
        await Expect(chat.ContextDivider).ToHaveTextAsync(ContextDividerText);
        await Expect(chat.ContextDivider).ToHaveAttributeAsync("role", "separator");
        await Expect(chat.Page.Locator("#messages > li.context-divider + li.msg-user .bubble")).ToHaveTextAsync("Second question");
        await chat.ScreenshotAsync("context-divider");

        // ...and from the stored messages after a reload, moving on with the next answer.
        await chat.ReloadAsync();
        await Expect(chat.Page.Locator("#messages > li.context-divider + li.msg-user .bubble")).ToHaveTextAsync("Second question");
        await chat.SendAndWaitAsync("Fourth question");
        await Expect(chat.ContextDivider).ToHaveCountAsync(1);
        await Expect(chat.Page.Locator("#messages > li.context-divider + li.msg-user .bubble")).ToHaveTextAsync("Third question");
        await Expect(chat.Messages).ToHaveCountAsync(8);

        await chat.Page.SetViewportSizeAsync(390, 844);
        await chat.Page.Locator("#messages > li.context-divider").ScrollIntoViewIfNeededAsync();
        await chat.ScreenshotAsync("phone-context-divider");
        chat.AssertNoPageErrors();
    }
}
