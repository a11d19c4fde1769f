using System.Text.Json;
using LlmServer.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests.Infrastructure;

/// <summary>The chat page in one fresh browser context, driven the way a person uses it.</summary>
public sealed class ChatPage : IAsyncDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly List<string> _pageErrors = [];

    private ChatPage(IBrowserContext context, IPage page, TestServer server)
    {
        Context = context;
        Page = page;
        Server = server;
        page.PageError += (_, error) => _pageErrors.Add(error);
        page.Console += (_, message) =>
        {
            // A failed fetch is logged by the browser as a console error; the page handles those itself.
            if (message.Type == "error" && !message.Text.StartsWith("Failed to load resource", StringComparison.Ordinal))
            {
                _pageErrors.Add("console: " + message.Text);
            }
        };
    }

    public IBrowserContext Context { get; }

    public IPage Page { get; }

    public TestServer Server { get; }

    /// <summary>Uncaught script errors and console errors seen so far.</summary>
    public IReadOnlyList<string> PageErrors => _pageErrors;

    /// <summary>Fails with every uncaught script error and console error the page reported.</summary>
    public void AssertNoPageErrors() =>
        Assert.True(_pageErrors.Count == 0, "The page reported errors:\n" + string.Join("\n", _pageErrors));

    public ILocator Prompt => Page.Locator("#prompt");

    public ILocator Messages => Page.Locator("#messages > li.msg");

    public ILocator Answers => Page.Locator("#messages > li.msg-assistant");

    public ILocator UserMessages => Page.Locator("#messages > li.msg-user");

    public ILocator LastAnswer => Answers.Last;

    public ILocator SessionItems => Page.Locator("#session-list > li");

    public ILocator StopButton => Page.Locator("#stop");

    public ILocator LiveStats => Page.Locator("#live-stats");

    /// <summary>The line before the first message the model saw for the latest answer.</summary>
    public ILocator ContextDivider => Page.Locator("#messages > li.context-divider");

    public ILocator SettingsDialog => Page.GetByRole(AriaRole.Dialog, new() { Name = "Conversation settings" });

    /// <summary>Opens the page in a new context; <paramref name="beforeLoad"/> runs first (to route traffic, say).</summary>
    public static Task<ChatPage> OpenAsync(
        ChatPageFixture fixture, BrowserNewContextOptions? options = null, Func<IPage, Task>? beforeLoad = null, bool waitUntilConnected = true) =>
        OpenAsync(fixture.Browser, fixture.Server, options, beforeLoad, waitUntilConnected);

    /// <summary>Opens the page of another server than the fixture's.</summary>
    public static async Task<ChatPage> OpenAsync(
        IBrowser browser, TestServer server, BrowserNewContextOptions? options = null, Func<IPage, Task>? beforeLoad = null, bool waitUntilConnected = true)
    {
        SetDefaultExpectTimeout((float)Patience.TotalMilliseconds);
        var context = await browser.NewContextAsync(options ?? new BrowserNewContextOptions { ViewportSize = new() { Width = 1280, Height = 800 } });
        context.SetDefaultTimeout((float)Patience.TotalMilliseconds);
        await context.AddInitScriptAsync(RecordToasts);
        var page = await context.NewPageAsync();
        var chat = new ChatPage(context, page, server);
        if (beforeLoad is not null)
        {
            await beforeLoad(page);
        }

        await chat.GotoAsync(waitUntilConnected);
        return chat;
    }

    public async Task GotoAsync(bool waitUntilConnected = true)
    {
        await Page.GotoAsync(Server.BaseAddress.ToString());
        if (waitUntilConnected)
        {
            await WaitUntilConnectedAsync();
        }
    }

    /// <summary>A toast (the page's non-blocking message) with this text, while it shows.</summary>
    public ILocator Toast(string text) => Page.Locator("#toasts .toast", new() { HasText = text });

    /// <summary>
    /// Waits until the page has shown a toast holding <paramref name="text"/> and returns its role (alert or status).
    /// Toasts go by themselves after seconds, which a starved test can take between two looks at the page: each one is
    /// recorded as it appears (<see cref="RecordToasts"/>), so one already gone still counts.
    /// </summary>
    public async Task<string> ShownToastAsync(string text)
    {
        // An object, truthy even when the role is empty: that is a wrong role to report, not a toast to wait for.
        var toast = await Page.WaitForFunctionAsync(
            "text => { const toast = window.__toasts.find(t => t.text.includes(text)); return toast && { role: toast.role }; }", text);
        return (await toast.JsonValueAsync<JsonElement>()).GetProperty("role").GetString()!;
    }

    /// <summary>Whether the page has shown a toast holding <paramref name="text"/> since it loaded, gone since or not.</summary>
    public Task<bool> HasShownToastAsync(string text) =>
        Page.EvaluateAsync<bool>("text => window.__toasts.some(t => t.text.includes(text))", text);

    public async Task ReloadAsync()
    {
        await Page.ReloadAsync();
        await WaitUntilConnectedAsync();
    }

    public Task WaitUntilConnectedAsync() => Expect(Page.Locator("#status-text")).ToHaveTextAsync("Connected");

    public async Task SendAsync(string text)
    {
        await Prompt.FillAsync(text);
        await Prompt.PressAsync("Enter");
        await Expect(UserMessages.Last.Locator(".bubble")).ToHaveTextAsync(text);
    }

    /// <summary>Waits until no answer streams and the last one shows its token counts.</summary>
    public async Task WaitForAnswerAsync()
    {
        await Expect(Page.Locator("#messages > li.streaming")).ToHaveCountAsync(0);
        await Expect(Page.Locator("#send")).ToBeVisibleAsync();
        await Expect(LastAnswer.Locator(".msg-meta")).ToContainTextAsync("tokens");
    }

    public async Task SendAndWaitAsync(string text)
    {
        await SendAsync(text);
        await WaitForAnswerAsync();
    }

    /// <summary>Sets the conversation's settings through the settings dialog (null leaves a field empty: the default).</summary>
    public async Task SetSettingsAsync(double? temperature = null, int? maxTokens = null, string? systemPrompt = null)
    {
        await Page.GetByRole(AriaRole.Button, new() { Name = "Settings" }).ClickAsync();
        var dialog = SettingsDialog;
        await dialog.GetByLabel("System prompt").FillAsync(systemPrompt ?? string.Empty);
        await dialog.GetByLabel("Temperature").FillAsync(temperature?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty);
        await dialog.GetByLabel("Max tokens").FillAsync(maxTokens?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Expect(dialog).ToBeHiddenAsync();
    }

    /// <summary>Opens the settings dialog, checks what it holds (empty: the server's default), and cancels it.</summary>
    public async Task ExpectSettingsAsync(string temperature, string maxTokens, string systemPrompt)
    {
        await Page.GetByRole(AriaRole.Button, new() { Name = "Settings" }).ClickAsync();
        var dialog = SettingsDialog;
        await Expect(dialog.GetByLabel("Temperature")).ToHaveValueAsync(temperature);
        await Expect(dialog.GetByLabel("Max tokens")).ToHaveValueAsync(maxTokens);
        await Expect(dialog.GetByLabel("System prompt")).ToHaveValueAsync(systemPrompt);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Cancel" }).ClickAsync();
        await Expect(dialog).ToBeHiddenAsync();
    }

    /// <summary>The ids of the sessions the server has (REST mirror).</summary>
    public async Task<List<string>> StoredSessionIdsAsync()
    {
        var json = await Server.Client.GetStringAsync(new Uri("/api/sessions", UriKind.Relative));
        using var list = JsonDocument.Parse(json);
        return [.. list.RootElement.EnumerateArray().Select(s => s.GetProperty("id").GetString()!)];
    }

    /// <summary>The id of the conversation on screen, from the address (#/c/ID).</summary>
    public async Task<string> CurrentSessionIdAsync()
    {
        await Expect(Page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#/c/"));
        var hash = await Page.EvaluateAsync<string>("() => location.hash");
        return Uri.UnescapeDataString(hash["#/c/".Length..]);
    }

    /// <summary>The session as the server stored it (REST mirror).</summary>
    public async Task<JsonElement> StoredSessionAsync(string id)
    {
        var json = await Server.Client.GetStringAsync(new Uri($"/api/sessions/{Uri.EscapeDataString(id)}", UriKind.Relative));
        return JsonDocument.Parse(json).RootElement.Clone();
    }

    /// <summary>Notes when an answer starts streaming from now on (see <see cref="SawStreamingAsync"/>).</summary>
    public Task WatchForStreamingAsync() => Page.EvaluateAsync(
        """
        () => {
          window.__sawStreaming = false;
          const messages = document.getElementById("messages");
          new MutationObserver(() => {
            if (messages.querySelector("li.msg-assistant.streaming .msg-body")) {
              window.__sawStreaming = true;
            }
          }).observe(messages, { childList: true, subtree: true, attributes: true });
        }
        """);

    public Task<bool> SawStreamingAsync() => Page.EvaluateAsync<bool>("() => window.__sawStreaming");

    public async Task ScreenshotAsync(string name) =>
        await Page.ScreenshotAsync(new() { Path = Path.Combine(ChatPageFixture.ArtifactsFolder, name + ".png"), FullPage = true });

    /// <summary>Runs before the page's own scripts in every document: records each toast added (text and role).</summary>
    private const string RecordToasts =
        """
        window.__toasts = [];
        new MutationObserver((records) => {
          for (const record of records) {
            for (const node of record.addedNodes) {
              if (node instanceof Element && node.classList.contains("toast")) {
                window.__toasts.push({ text: node.textContent ?? "", role: node.getAttribute("role") ?? "" });
              }
            }
          }
        }).observe(document, { childList: true, subtree: true });
        """;

    public async ValueTask DisposeAsync() => await Context.CloseAsync();
}
