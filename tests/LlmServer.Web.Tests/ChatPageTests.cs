using System.Net;
using System.Text.RegularExpressions;
using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

/// <summary>The chat page in headless Chromium against the real server and the stories260K model.</summary>
public sealed partial class ChatPageTests(ChatPageFixture fixture) : IClassFixture<ChatPageFixture>
{
    private const string StoryPrompt = "Once upon a time";

    [Fact]
    public async Task Page_is_served_at_the_root_with_revalidated_html_and_immutable_assets()
    {
        using var page = await fixture.Server.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.True(page.Headers.CacheControl?.NoCache);
        Assert.Contains("script-src 'self'", string.Join(";", page.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);

        var html = await page.Content.ReadAsStringAsync();
        var script = Regex.Match(html, "src=\"(assets/app-[A-Z0-9]+\\.js)\"").Groups[1].Value;
        Assert.NotEmpty(script);
        using var asset = await fixture.Server.Client.GetAsync(new Uri("/" + script, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
        Assert.True(asset.Headers.CacheControl?.Public);
        Assert.Equal(TimeSpan.FromDays(365), asset.Headers.CacheControl?.MaxAge);
        Assert.Contains("immutable", asset.Headers.CacheControl!.Extensions.Select(e => e.Name));

        using var again = new HttpRequestMessage(HttpMethod.Get, "/");
        again.Headers.IfNoneMatch.Add(page.Headers.ETag!);
        using var revalidated = await fixture.Server.Client.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, revalidated.StatusCode);
    }

    [Fact]
    public async Task Answer_streams_in_visible_steps_and_ends_with_token_counts()
    {
        // The scripted hub sends each delta only when the test lets it: every step must show before the next exists.
        string[] pieces = ["Once", " upon", " a time", ", a cat", " sang", " to the", " moon."];
        var hub = ScriptedHub.Gated(pieces);
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);

        await chat.SendAsync("Tell me a story");
        var body = chat.LastAnswer.Locator(".msg-body");
        await Expect(body).ToHaveAttributeAsync("aria-live", "polite");
        await Expect(chat.LiveStats).ToHaveTextAsync("Waiting for the first token…");

        var shown = string.Empty;
        for (var step = 1; step <= pieces.Length; step++)
        {
            hub.Release();
            shown += pieces[step - 1];
            await Expect(body).ToHaveTextAsync(shown);
            await Expect(chat.LastAnswer).ToHaveClassAsync(new Regex(@"\bstreaming\b"));
            // The rate needs two tokens.
            await Expect(chat.LiveStats).ToHaveTextAsync(new Regex(step == 1 ? "^Generating · 1 tokens$" : $@"^Generating · {step} tokens · [\d.]+ tok/s$"));
        }

        hub.Release();
        await chat.WaitForAnswerAsync();
        await Expect(body).ToHaveTextAsync(shown);
        await Expect(chat.LastAnswer.Locator(".msg-meta")).ToHaveTextAsync($"{pieces.Length} tokens · prompt 12 · 90.0 tok/s");
        await Expect(chat.LiveStats).ToBeEmptyAsync();
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_real_answer_ends_with_token_counts_and_is_stored()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);
        await chat.SetSettingsAsync(temperature: 0, maxTokens: 64);

        await chat.SendAndWaitAsync(StoryPrompt);

        await Expect(chat.LastAnswer.Locator(".msg-meta")).ToHaveTextAsync(new Regex(@"^\d+ tokens · prompt \d+"));
        await Expect(chat.LastAnswer.Locator(".msg-body")).Not.ToBeEmptyAsync();
        var stored = await chat.StoredSessionAsync(await chat.CurrentSessionIdAsync());
        var messages = stored.GetProperty("messages");
        Assert.Equal(2, messages.GetArrayLength());
        Assert.Equal(StoryPrompt, messages[0].GetProperty("content").GetString());
        Assert.InRange(messages[1].GetProperty("completionTokens").GetInt32(), 1, 64);

        await chat.ScreenshotAsync("finished-conversation");
        await Expect(chat.Page.Locator("#model-name")).ToHaveTextAsync("stories260K");
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Stop_ends_the_answer_part_way()
    {
        // Scripted, so the answer is certainly still running when Stop is pressed; that the server stores a stopped
        // answer as cancelled is ChatHubTests' StopGeneration test.
        var hub = ScriptedHub.Gated("Once", " upon", " a time", " there was", " a dog.");
        await using var chat = await ChatPage.OpenAsync(fixture, beforeLoad: hub.RouteAsync);
        await chat.SendAsync(StoryPrompt);
        hub.Release();
        hub.Release();
        await Expect(chat.LastAnswer.Locator(".msg-body")).ToHaveTextAsync("Once upon");

        await chat.StopButton.ClickAsync();
        await chat.WaitForAnswerAsync();

        await Expect(chat.LastAnswer.Locator(".msg-meta")).ToHaveTextAsync("2 tokens · prompt 12 · 90.0 tok/s · stopped");
        await Expect(chat.LastAnswer.Locator(".msg-body")).ToHaveTextAsync("Once upon");
        Assert.Contains("StopGeneration", hub.Calls);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Regenerate_streams_a_new_last_answer_in_place_of_the_old_one()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);
        await chat.SetSettingsAsync(maxTokens: 32);
        await chat.SendAndWaitAsync(StoryPrompt);
        var id = await chat.CurrentSessionIdAsync();
        var firstStored = (await chat.StoredSessionAsync(id)).GetProperty("messages")[1].GetProperty("createdAt").GetDateTimeOffset();

        await chat.WatchForStreamingAsync();
        await chat.LastAnswer.GetByRole(AriaRole.Button, new() { Name = "Regenerate this answer" }).ClickAsync();
        await chat.WaitForAnswerAsync();

        Assert.True(await chat.SawStreamingAsync(), "No new answer streamed after Regenerate.");
        await Expect(chat.Answers).ToHaveCountAsync(1);
        await Expect(chat.UserMessages).ToHaveCountAsync(1);
        var messages = (await chat.StoredSessionAsync(id)).GetProperty("messages");
        Assert.Equal(2, messages.GetArrayLength());
        Assert.True(messages[1].GetProperty("createdAt").GetDateTimeOffset() > firstStored, "The stored answer was not replaced.");
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Edit_and_resend_replaces_the_message_and_its_answer()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);
        await chat.SetSettingsAsync(maxTokens: 24);
        await chat.SendAndWaitAsync("The cat sat");
        var id = await chat.CurrentSessionIdAsync();

        await chat.UserMessages.Last.GetByRole(AriaRole.Button, new() { Name = "Edit and resend this message" }).ClickAsync();
        var editor = chat.Page.GetByLabel("Edit message");
        await editor.FillAsync("The dog ran");
        await editor.PressAsync("Enter");
        await Expect(chat.UserMessages.Last.Locator(".bubble")).ToHaveTextAsync("The dog ran");
        await chat.WaitForAnswerAsync();

        await Expect(chat.Messages).ToHaveCountAsync(2);
        var messages = (await chat.StoredSessionAsync(id)).GetProperty("messages");
        Assert.Equal(2, messages.GetArrayLength());
        Assert.Equal("The dog ran", messages[0].GetProperty("content").GetString());
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Conversations_survive_switching_and_a_reload()
    {
        var first = "First conversation " + Guid.NewGuid().ToString("N")[..6];
        var second = "Second conversation " + Guid.NewGuid().ToString("N")[..6];
        await using var chat = await ChatPage.OpenAsync(fixture);
        await chat.SetSettingsAsync(maxTokens: 16);
        await chat.SendAndWaitAsync(first);
        var firstAnswer = await chat.LastAnswer.Locator(".msg-body").InnerTextAsync();

        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "New chat" }).ClickAsync();
        await Expect(chat.Messages).ToHaveCountAsync(0);
        await chat.SetSettingsAsync(maxTokens: 16);
        await chat.SendAndWaitAsync(second);

        // Newest first.
        var titles = (await chat.Page.Locator("#session-list .session-title").AllInnerTextsAsync()).ToList();
        Assert.True(titles.IndexOf(second) >= 0 && titles.IndexOf(second) < titles.IndexOf(first), string.Join(" | ", titles));

        await chat.Page.GetByRole(AriaRole.Button, new() { Name = first, Exact = true }).ClickAsync();
        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync([first]);
        await Expect(chat.Answers.Locator(".msg-body")).ToHaveTextAsync([firstAnswer]);
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync(first);

        await chat.ReloadAsync();
        await Expect(chat.Page.Locator("#session-list .session-title", new() { HasText = first })).ToHaveCountAsync(1);
        await Expect(chat.Page.Locator("#session-list .session-title", new() { HasText = second })).ToHaveCountAsync(1);
        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync([first]);
        await Expect(chat.Answers.Locator(".msg-body")).ToHaveTextAsync([firstAnswer]);

        // On a phone-width screen (and in dark mode) the list is a drawer behind the menu button.
        await chat.Page.EmulateMediaAsync(new() { ColorScheme = ColorScheme.Dark, ReducedMotion = ReducedMotion.Reduce });
        await chat.Page.SetViewportSizeAsync(390, 844);
        var secondInList = chat.Page.GetByRole(AriaRole.Button, new() { Name = second, Exact = true });
        await Expect(secondInList).Not.ToBeInViewportAsync();
        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "Open the conversation list" }).ClickAsync();
        await Expect(secondInList).ToBeInViewportAsync();
        await chat.ScreenshotAsync("phone-dark-conversation-list");
        await secondInList.ClickAsync();
        await Expect(secondInList).Not.ToBeInViewportAsync();
        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync([second]);
        await Expect(chat.Answers).ToHaveCountAsync(1);
        await Expect(chat.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("tokens");
        await chat.ScreenshotAsync("phone-dark-conversation");
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Markup_in_a_message_is_shown_as_text_and_never_runs()
    {
        const string Markup = "<img src=x onerror=alert(1)>";
        await using var chat = await ChatPage.OpenAsync(fixture);
        var dialogs = new List<string>();
        chat.Page.Dialog += (_, dialog) =>
        {
            dialogs.Add(dialog.Message);
            _ = dialog.DismissAsync();
        };
        await chat.SetSettingsAsync(maxTokens: 16);

        await chat.SendAndWaitAsync(Markup);
        await chat.ReloadAsync();

        await Expect(chat.UserMessages.Locator(".bubble")).ToHaveTextAsync([Markup]);
        await Expect(chat.Page.Locator("#messages img")).ToHaveCountAsync(0);
        await Expect(chat.Page.Locator("#session-list .session-title", new() { HasText = Markup })).ToHaveCountAsync(1);
        Assert.Empty(dialogs);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task Rename_and_delete_a_conversation_from_the_list()
    {
        var title = "To rename " + Guid.NewGuid().ToString("N")[..6];
        var renamed = "Renamed " + Guid.NewGuid().ToString("N")[..6];
        await using var chat = await ChatPage.OpenAsync(fixture);
        await chat.SetSettingsAsync(maxTokens: 8);
        await chat.SendAndWaitAsync(title);
        var id = await chat.CurrentSessionIdAsync();

        await chat.Page.GetByRole(AriaRole.Button, new() { Name = $"Rename “{title}”" }).ClickAsync();
        var input = chat.Page.GetByLabel("Conversation title");
        await input.FillAsync(renamed);
        await input.PressAsync("Enter");
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync(renamed);
        await chat.ReloadAsync();
        await Expect(chat.Page.GetByRole(AriaRole.Button, new() { Name = renamed, Exact = true })).ToBeVisibleAsync();

        await chat.Page.GetByRole(AriaRole.Button, new() { Name = $"Delete “{renamed}”" }).ClickAsync();
        await chat.Page.GetByRole(AriaRole.Dialog).GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Expect(chat.Page.GetByRole(AriaRole.Button, new() { Name = renamed, Exact = true })).ToHaveCountAsync(0);
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("New chat");
        using var gone = await fixture.Server.Client.GetAsync(new Uri($"/api/sessions/{id}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_dropped_connection_reconnects_and_the_running_answer_resumes()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);

        // Every hub WebSocket of the page goes through this route, so the test can cut the current one. The first
        // one shows the page only the start of its answer, then nothing: however fast the model is, the page is
        // mid-answer when the connection drops, and must resume.
        var sockets = new List<IWebSocketRoute>();
        var toServer = new List<string>();
        await chat.Page.RouteWebSocketAsync(new Regex("/hubs/chat"), socket =>
        {
            var first = sockets.Count == 0;
            sockets.Add(socket);
            var server = socket.ConnectToServer();
            var holding = false;
            socket.OnMessage(frame =>
            {
                lock (toServer)
                {
                    toServer.Add(frame.Text ?? string.Empty);
                }

                server.Send(frame.Text ?? string.Empty);
            });
            server.OnMessage(frame =>
            {
                if (!holding)
                {
                    socket.Send(frame.Text ?? string.Empty);
                    holding = first && (frame.Text ?? string.Empty).Contains("\"type\":\"delta\"", StringComparison.Ordinal);
                }
            });
        });
        await chat.ReloadAsync();
        await chat.SetSettingsAsync(temperature: 0, maxTokens: 200);

        await chat.SendAsync(StoryPrompt);
        await Expect(chat.LastAnswer.Locator(".msg-body")).Not.ToBeEmptyAsync();
        await sockets[0].CloseAsync();

        await chat.ShownToastAsync("Reconnected.");
        await chat.WaitForAnswerAsync();
        Assert.True(sockets.Count >= 2, "The page did not open a new connection.");
        lock (toServer)
        {
            Assert.Contains(toServer, frame => frame.Contains("\"target\":\"ResumeStream\"", StringComparison.Ordinal));
        }

        var stored = (await chat.StoredSessionAsync(await chat.CurrentSessionIdAsync())).GetProperty("messages")[1];
        Assert.Equal("length", stored.GetProperty("finishReason").GetString());
        Assert.Equal(200, stored.GetProperty("completionTokens").GetInt32());
        await Expect(chat.LastAnswer.Locator(".msg-meta")).ToContainTextAsync("200 tokens");
        Assert.DoesNotContain(chat.PageErrors, e => !e.Contains("WebSocket", StringComparison.OrdinalIgnoreCase) && !e.Contains("connection", StringComparison.OrdinalIgnoreCase));
    }
}
