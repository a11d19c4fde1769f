using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

/// <summary>One conversation open in two tabs: what one tab does shows in the other, and nothing typed is lost.</summary>
public sealed partial class ChatPageTests
{
    [Fact]
    public async Task Another_tabs_answer_shows_when_the_page_gets_focus_back()
    {
        await using var first = await ChatPage.OpenAsync(fixture);
        await first.SetSettingsAsync(maxTokens: 8);
        await first.SendAndWaitAsync("Two tabs " + Guid.NewGuid().ToString("N")[..6]);
        var id = await first.CurrentSessionIdAsync();
        var second = await ChatPage.OpenAsync(fixture);
        await using var secondPage = second;
        await second.Page.GotoAsync($"{fixture.Server.BaseAddress}#/c/{Uri.EscapeDataString(id)}");
        await Expect(second.Answers).ToHaveCountAsync(1);

        await first.SendAndWaitAsync("And then?");
        var answer = await first.LastAnswer.Locator(".msg-body").InnerTextAsync();
        // Nothing tells an open tab; coming back to it does.
        await second.Page.EvaluateAsync("() => window.dispatchEvent(new Event('focus'))");

        await Expect(second.UserMessages.Locator(".bubble")).ToHaveTextAsync([await first.UserMessages.First.Locator(".bubble").InnerTextAsync(), "And then?"]);
        await Expect(second.LastAnswer.Locator(".msg-body")).ToHaveTextAsync(answer);
        await Expect(second.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("tokens");
        first.AssertNoPageErrors();
        second.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_message_to_a_conversation_deleted_in_another_tab_goes_back_in_the_box()
    {
        await using var first = await ChatPage.OpenAsync(fixture);
        await first.SetSettingsAsync(maxTokens: 8);
        var title = "Deleted elsewhere " + Guid.NewGuid().ToString("N")[..6];
        await first.SendAndWaitAsync(title);
        var id = await first.CurrentSessionIdAsync();
        var second = await ChatPage.OpenAsync(fixture);
        await using var secondPage = second;
        await second.Page.GotoAsync($"{fixture.Server.BaseAddress}#/c/{Uri.EscapeDataString(id)}");
        await Expect(second.Answers).ToHaveCountAsync(1);

        await first.Page.GetByRole(AriaRole.Button, new() { Name = $"Delete “{title}”" }).ClickAsync();
        await first.Page.GetByRole(AriaRole.Dialog).GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Expect(first.Page.Locator("#chat-title")).ToHaveTextAsync("New chat");

        await second.Prompt.FillAsync("Are you still there?");
        await second.Prompt.PressAsync("Enter");
        await second.ShownToastAsync("This conversation no longer exists.");
        await Expect(second.Page.Locator("#chat-title")).ToHaveTextAsync("New chat");
        await Expect(second.Prompt).ToHaveValueAsync("Are you still there?");
        first.AssertNoPageErrors();
        second.AssertNoPageErrors();
    }
}
