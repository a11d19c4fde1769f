using LlmServer.Web.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace LlmServer.Web.Tests;

/// <summary>A new chat before and at its first message: its settings, and a first message the server refuses.</summary>
public sealed partial class ChatPageTests
{
    [Fact]
    public async Task Settings_chosen_for_a_new_chat_survive_a_reload_and_go_with_its_first_message()
    {
        const string SystemPrompt = "You tell short stories.";
        await using var chat = await ChatPage.OpenAsync(fixture);
        await chat.SetSettingsAsync(temperature: 0.5, maxTokens: 12, systemPrompt: SystemPrompt);

        await chat.ReloadAsync();
        await chat.ExpectSettingsAsync("0.5", "12", SystemPrompt);

        await chat.SendAndWaitAsync(StoryPrompt);
        var stored = await chat.StoredSessionAsync(await chat.CurrentSessionIdAsync());
        var info = stored.GetProperty("info");
        Assert.Equal(SystemPrompt, info.GetProperty("systemPrompt").GetString());
        Assert.Equal(0.5, info.GetProperty("settings").GetProperty("temperature").GetDouble());
        Assert.Equal(12, info.GetProperty("settings").GetProperty("maxTokens").GetInt32());
        Assert.InRange(stored.GetProperty("messages")[1].GetProperty("completionTokens").GetInt32(), 1, 12);

        await chat.ReloadAsync();
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync(StoryPrompt); // the session, loaded
        await chat.ExpectSettingsAsync("0.5", "12", SystemPrompt);

        // They went with that chat: the next new chat starts from the server's defaults.
        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "New chat" }).ClickAsync();
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("New chat");
        await chat.ExpectSettingsAsync(string.Empty, string.Empty, string.Empty);
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task A_refused_first_message_leaves_no_empty_conversation_behind()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);
        var before = await chat.StoredSessionIdsAsync();
        await Expect(chat.SessionItems).ToHaveCountAsync(before.Count);
        await chat.SetSettingsAsync(maxTokens: 8);
        // Far beyond one slot's 1024 tokens: refused before anything is stored.
        var tooLong = string.Join(' ', Enumerable.Repeat("Once upon a time there was a little dog.", 400));

        await chat.Prompt.FillAsync(tooLong);
        await chat.Prompt.PressAsync("Enter");

        await chat.ShownToastAsync("too long for the model's context");
        await Expect(chat.Page.Locator("#chat-title")).ToHaveTextAsync("New chat");
        await Expect(chat.SessionItems).ToHaveCountAsync(before.Count);
        await Expect(chat.Messages).ToHaveCountAsync(0);
        await Expect(chat.Prompt).ToHaveValueAsync(tooLong);
        await Expect(chat.Page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#/$"));
        Assert.Equal(before, await chat.StoredSessionIdsAsync());

        // Still the same new chat, with its settings: the next message starts it.
        await chat.ExpectSettingsAsync(string.Empty, "8", string.Empty);
        await chat.Prompt.FillAsync(StoryPrompt);
        await chat.Prompt.PressAsync("Enter");
        await chat.WaitForAnswerAsync();
        await Expect(chat.SessionItems).ToHaveCountAsync(before.Count + 1);
        var stored = await chat.StoredSessionAsync(await chat.CurrentSessionIdAsync());
        Assert.Equal(8, stored.GetProperty("info").GetProperty("settings").GetProperty("maxTokens").GetInt32());
        chat.AssertNoPageErrors();
    }

    [Fact]
    public async Task The_settings_dialog_checks_against_the_limits_the_server_publishes()
    {
        await using var chat = await ChatPage.OpenAsync(fixture);
        using var props = System.Text.Json.JsonDocument.Parse(await fixture.Server.Client.GetStringAsync(new Uri("/props", UriKind.Relative)));
        var maxTemperature = props.RootElement.GetProperty("limits").GetProperty("temperature").GetProperty("maximum").GetDouble();

        await chat.Page.GetByRole(AriaRole.Button, new() { Name = "Settings" }).ClickAsync();
        var dialog = chat.SettingsDialog;
        var temperature = dialog.GetByLabel("Temperature");
        await Expect(temperature).ToHaveAttributeAsync("max", maxTemperature.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Expect(dialog.GetByLabel("Top p")).ToHaveAttributeAsync("max", "1");
        await Expect(dialog.GetByLabel("Max tokens")).ToHaveAttributeAsync("min", "1");

        await temperature.FillAsync((maxTemperature + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Expect(dialog.GetByRole(AriaRole.Alert)).ToHaveTextAsync($"Temperature must be between 0 and {maxTemperature}.");
        await dialog.GetByLabel("Top p").FillAsync("0");
        await temperature.FillAsync("1");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Expect(dialog.GetByRole(AriaRole.Alert)).ToHaveTextAsync("Top p must be above 0 and at most 1.");
        await dialog.GetByLabel("Top p").FillAsync(string.Empty);
        await dialog.GetByLabel("Max tokens").FillAsync("2.5");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Expect(dialog.GetByRole(AriaRole.Alert)).ToHaveTextAsync("Max tokens must be a whole number, at least 1.");
        chat.AssertNoPageErrors();
    }
}
