using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Tests.RealModel;

public sealed class StoriesEngineTests(StoriesEngineFixture fixture) : IClassFixture<StoriesEngineFixture>
{
    private const string Prompt = "Once upon a time, there was a little girl named Lily.";

    [Fact]
    public async Task Generates_text_with_usage()
    {
        await using var stream = fixture.Engine.Submit(new GenerationRequest { Prompt = Prompt, MaxTokens = 24, Sampling = new() { Temperature = 0 } });
        var result = await stream.CollectAsync();
        var choice = Assert.Single(result.Choices);
        Assert.False(string.IsNullOrWhiteSpace(choice.Text));
        Assert.Equal(stream.PromptTokens, choice.Completion.Usage.PromptTokens);
        Assert.InRange(choice.Completion.Usage.CompletionTokens, 1, 24);
        Assert.Contains(choice.Completion.FinishReason, new[] { FinishReason.Stop, FinishReason.Length });
    }
}
