using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

/// <summary>Keeping the conversation on screen in step with the server's copy: when it syncs, and what it never throws away.</summary>
public sealed partial class ChatPageTests
{
    private const string FocusEvent = "() => window.dispatchEvent(new Event('focus'))";

    [Fact]
    public async Task An_answer_running_on_another_replica_is_looked_for_once_not_in_a_loop()
    {
        var hub = new ScriptedHub("unused", pieces: 1);
        var id = hub.AddSession("Elsewhere", generating: true, "Are you answering?");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);

        await chat.Page.GotoAsync($"{fixture.Server.BaseAddress}#/c/{Uri.EscapeDataString(id)}");

        // Following it finds nothing here (no_generation); the sync after that ends with the list's refresh. Had it
        // followed again, that second ResumeStream would have reached the hub before this ListSessions.
        await hub.WhenCalledInOrderAsync(0, "GetSession", "ResumeStream", "GetSession", "ListSessions");
        Assert.Single(hub.Calls, call => call == "ResumeStream");
        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync(["Are you answering?"]);
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("Elsewhere");
        await Expect(chat.Page.Locator("#toasts .toast")).ToHaveCountAsync(0);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_sync_on_focus_waits_for_an_open_edit_form_and_keeps_what_is_typed_in_it()
    {
        var hub = new ScriptedHub("Fine.", pieces: 1);
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.SendAndWaitAsync("First");
        await hub.WhenCalledInOrderAsync(0, "SendMessage", "GetSession", "ListSessions");
        var id = await chat.CurrentSessionIdAsync();
        hub.AddMessages(id, "Elsewhere", "Answered elsewhere");

        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "Edit and resend this message" }).ClickAsync();
        var edit = chat.Page.GetByLabel("Edit message");
        await edit.FillAsync("Typed text");
        var before = hub.Calls.Count;
        await chat.Page.EvaluateAsync(FocusEvent);
        await hub.WhenCalledInOrderAsync(before, "GetSession", "ListSessions");

        await Expect(edit).ToHaveValueAsync("Typed text");
        await Expect(chat.UserMessages).ToHaveCountAsync(1);

        // Closed without sending: the sync it waited for comes now.
        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "Cancel" }).ClickAsync();
        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync(["First", "Elsewhere"]);
        await Expect(chat.LastAnswer.Locator(".msg-body")).ToHaveTextAsync("Answered elsewhere");
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_slow_reply_to_a_focus_sync_does_not_put_back_an_older_copy()
    {
        var hub = new ScriptedHub("Fine.", pieces: 1);
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.SendAndWaitAsync("First");
        await hub.WhenCalledInOrderAsync(0, "SendMessage", "GetSession", "ListSessions");

        // The focus sync's reply (one exchange) is held until a newer exchange is on screen.
        var release = hub.HoldNextGetSession();
        var before = hub.Calls.Count;
        await chat.Page.EvaluateAsync(FocusEvent);
        await hub.WhenCalledInOrderAsync(before, "GetSession");
        await chat.SendAndWaitAsync("Second");
        await hub.WhenCalledInOrderAsync(before, "GetSession", "SendMessage", "GetSession", "ListSessions");
        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync(["First", "Second"]);

        var released = hub.Calls.Count;
        release();
        // Handled (the list is refreshed after every sync), and dropped: the screen keeps both exchanges.
        await hub.WhenCalledInOrderAsync(released, "ListSessions");
        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync(["First", "Second"]);
        await Expect(chat.Answers).ToHaveCountAsync(2);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_conversation_deleted_elsewhere_leaves_the_screen_on_the_next_focus()
    {
        var hub = new ScriptedHub("unused", pieces: 1);
        var id = hub.AddSession("Soon gone", generating: false, "Hello", "Hi");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.Page.GotoAsync($"{fixture.Server.BaseAddress}#/c/{Uri.EscapeDataString(id)}");
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("Soon gone");

        hub.RemoveSession(id);
        await chat.Page.EvaluateAsync(FocusEvent);

        await chat.ShownToastAsync("This conversation no longer exists.");
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("New chat");
        await Expect(chat.SessionItems).ToHaveCountAsync(0);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_tab_switch_syncs_once_though_focus_and_visibility_both_fire()
    {
        var hub = new ScriptedHub("unused", pieces: 1);
        var id = hub.AddSession("Back again", generating: false, "Hello", "Hi");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.Page.GotoAsync($"{fixture.Server.BaseAddress}#/c/{Uri.EscapeDataString(id)}");
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("Back again");
        await hub.WhenCalledInOrderAsync(0, "GetSession");

        var before = hub.Calls.Count;
        await chat.Page.EvaluateAsync("() => { window.dispatchEvent(new Event('focus')); document.dispatchEvent(new Event('visibilitychange')); }");

        await hub.WhenCalledInOrderAsync(before, "GetSession", "ListSessions");
        Assert.Single(hub.Calls.Skip(before), call => call == "GetSession");
        chat.AssertNoPageErrors();
    }
}
