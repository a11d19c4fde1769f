using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

public sealed partial class ChatPageTests
{
    private const string Code = "const answer = 42;\nfunction greet(name) {\n  return `hello ${name}`;\n}";

    // What a model could say: markdown, a code block, and markup that must never run or load anything.
    private static readonly string HostileAnswer =
        "Here is **bold** text and a [bad link](javascript:alert(3)).\n\n" +
        "<img src=x onerror=alert(1)>\n<script>alert(2)</script>\n<iframe src=\"javascript:alert(4)\"></iframe>\n\n" +
        "```js\n" + Code + "\n```\n\n- one\n- two\n";

    [Fact]
    public async Task Model_markdown_is_rendered_sanitized_with_highlighted_code_and_a_copy_button()
    {
        var hub = new ScriptedHub(HostileAnswer, pieces: 12);
        await using var chat = await ChatPage.OpenAsync(
            fixture,
            new BrowserNewContextOptions { ViewportSize = new() { Width = 1280, Height = 800 }, Permissions = ["clipboard-read", "clipboard-write"] },
            hub.RouteAsync);
        var dialogs = new List<string>();
        chat.Page.Dialog += (_, dialog) =>
        {
            dialogs.Add(dialog.Message);
            _ = dialog.DismissAsync();
        };

        await chat.SendAndWaitAsync("Show me some code");

        var answer = chat.LastAnswer.Locator(".msg-body");
        await Expect(answer.Locator("strong")).ToHaveTextAsync("bold");
        await Expect(answer.Locator("li")).ToHaveTextAsync(["one", "two"]);
        await Expect(answer.GetByText("bad link")).ToBeVisibleAsync();
        await Expect(answer.Locator("img, script, iframe, [onerror], a[href^='javascript']")).ToHaveCountAsync(0);
        await Expect(answer).ToContainTextAsync("<img src=x onerror=alert(1)>");
        await Expect(answer).ToContainTextAsync("<script>alert(2)</script>");
        await Expect(answer.Locator(".code-lang")).ToHaveTextAsync("js");
        Assert.True(await answer.Locator("code .hljs-keyword").CountAsync() >= 2, "The code block was not highlighted.");

        var copy = answer.GetByRole(AriaRole.Button, new() { Name = "Copy js" });
        await copy.ClickAsync();
        await Expect(copy).ToHaveTextAsync("Copied");
        Assert.Equal(Code, await chat.Page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));

        await chat.ScreenshotAsync("markdown-answer");
        Assert.Empty(dialogs);
        chat.AssertNoPageErrors();
    }
}
