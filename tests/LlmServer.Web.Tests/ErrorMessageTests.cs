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

        Assert.Equal("alert", await chat.ShownToastAsync("too long for the model's context"));
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

        await chat.ShownToastAsync("The server is busy right now");
        await Expect(chat.Prompt).ToHaveValueAsync("Are you there?");
        await Expect(chat.Answers).ToHaveCountAsync(0);
        // The session made for the refused message is gone again.
        await Expect(chat.SessionItems).ToHaveCountAsync(0);
        Assert.Contains("DeleteSession", hub.Calls);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_full_queue_is_told_as_such_though_its_text_says_busy()
    {
        // The engine's own text for a full queue: "busy: " inside it is not the code.
        var hub = new ScriptedHub("unused", pieces: 1, refusal: "queue_full: The server is busy: the request queue is full. Retry later.");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);

        await chat.Prompt.FillAsync("Anyone?");
        await chat.Prompt.PressAsync("Enter");

        await chat.ShownToastAsync("The server is busy right now");
        await Expect(chat.Prompt).ToHaveValueAsync("Anyone?");
        // A refusal shows its toast at once (the one above): the recorder keeps any other, even one gone since.
        Assert.False(await chat.HasShownToastAsync("already answering"));
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_locked_session_store_is_told_as_such_not_as_a_model_that_is_not_ready()
    {
        var hub = new ScriptedHub("unused", pieces: 1, refusal: "unavailable: the session store is locked by another writer; try again shortly");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);

        await chat.Prompt.FillAsync("Hello?");
        await chat.Prompt.PressAsync("Enter");

        // A warning (status, not alert): waiting helps.
        Assert.Equal("status", await chat.ShownToastAsync("The session store is locked by another writer; try again shortly."));
        await Expect(chat.Prompt).ToHaveValueAsync("Hello?");
        Assert.False(await chat.HasShownToastAsync("model"));
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task An_answer_a_stopped_server_cut_short_says_so()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);
        await chat.SetSettingsAsync(maxTokens: 8);
        await chat.SendAndWaitAsync(StoryPrompt);
        var id = await chat.CurrentSessionIdAsync();

        // What a restarted server reports for an answer it was writing when it stopped: finish reason "interrupted".
        await chat.Page.RouteWebSocketAsync(new Regex("/hubs/chat"), socket =>
        {
            var server = socket.ConnectToServer();
            socket.OnMessage(frame => server.Send(frame.Text ?? string.Empty));
            server.OnMessage(frame => socket.Send(FinishReason().Replace(frame.Text ?? string.Empty, "\"finishReason\":\"interrupted\"")));
        });
        await chat.ReloadAsync();

        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync(StoryPrompt);
        await Expect(chat.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("cut short: the server stopped while answering");
        Assert.NotEqual("interrupted", (await chat.StoredSessionAsync(id)).GetProperty("messages")[1].GetProperty("finishReason").GetString());
        chat.AssertNoPageErrors();
    }

    [GeneratedRegex("\"finishReason\":\"(length|stop)\"")]
    private static partial Regex FinishReason();

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
