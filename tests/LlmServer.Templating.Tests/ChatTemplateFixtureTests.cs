using System.Text.Json;
using LlmServer.Templating.Chat;
using LlmServer.Testing;
using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Templating.Tests;

/// <summary>Every fixture template × case renders byte for byte as llama.cpp 815a2a59 rendered it, or refuses alike.</summary>
public sealed class ChatTemplateFixtureTests
{
    /// <summary>The day the fixtures were rendered (templates that print the date show it).</summary>
    public static readonly DateTimeOffset RenderedOn = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    public static TheoryData<string, string> Pairs()
    {
        var data = new TheoryData<string, string>();
        foreach (var template in ChatTemplateFixtures.TemplateNames)
        {
            foreach (var caseName in ChatTemplateFixtures.CaseNames)
            {
                data.Add(template, caseName);
            }
        }

        return data;
    }

    internal static ChatTemplate Load(string template) =>
        ChatTemplate.Parse(ChatTemplateFixtures.TemplateSource(template), new ChatTemplateOptions
        {
            BosToken = "<s>",
            EosToken = "</s>",
            AddBos = true,
            Clock = new FakeTimeProvider(RenderedOn) { },
        });

    [Fact]
    public void Fixtures_are_all_there()
    {
        Assert.Equal(57, ChatTemplateFixtures.TemplateNames.Count);
        Assert.Equal(6, ChatTemplateFixtures.CaseNames.Count);
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void Renders_as_llama_cpp_does(string template, string caseName)
    {
        var chatTemplate = Load(template);
        var request = FixtureCases.Load(ChatTemplateFixtures.CaseJson(caseName));
        var expected = ChatTemplateFixtures.ExpectedPrompt(template, caseName);
        if (expected is null)
        {
            var error = ChatTemplateFixtures.ExpectedError(template, caseName)!;
            var message = JsonDocument.Parse(error).RootElement.GetProperty("error").GetProperty("message").GetString()!;
            var refusal = Assert.Throws<TemplateRaisedException>(() => chatTemplate.Render(request));
            Assert.EndsWith("Jinja Exception: " + refusal.Reason, message, StringComparison.Ordinal);
            Assert.Contains($"at line {refusal.Line}, column {refusal.Column} in source", message, StringComparison.Ordinal);
            return;
        }

        var prompt = chatTemplate.Render(request);
        Assert.Equal(expected, prompt);
    }
}
