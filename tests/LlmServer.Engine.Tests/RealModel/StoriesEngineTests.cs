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

    [Fact]
    public async Task A_grammar_that_does_not_parse_is_an_invalid_request()
    {
        var error = Assert.Throws<GenerationException>(() =>
            fixture.Engine.Submit(new GenerationRequest { Prompt = Prompt, MaxTokens = 8, Grammar = "root ::= (\"yes\" | \"no\"\n" }));

        Assert.Equal(GenerationErrorCode.InvalidRequest, error.Code);
        Assert.Equal("grammar", error.Parameter);
        Assert.Contains("line 2, column 1: expecting ')'", error.Message, StringComparison.Ordinal);

        // Nothing leaked: the engine still serves requests.
        await RealEngine.WaitUntilIdleAsync(fixture.Engine);
        await using var stream = fixture.Engine.Submit(new GenerationRequest { Prompt = Prompt, MaxTokens = 4, Sampling = new() { Temperature = 0 } });
        var result = await stream.CollectAsync();
        Assert.InRange(Assert.Single(result.Choices).Completion.Usage.CompletionTokens, 1, 4);
    }

    [Fact]
    public async Task A_valid_grammar_constrains_the_output()
    {
        await using var stream = fixture.Engine.Submit(new GenerationRequest
        {
            Prompt = Prompt,
            MaxTokens = 8,
            Sampling = new() { Temperature = 0 },
            Grammar = "root ::= (\"yes\" | \"no\") \".\"\n",
        });

        var result = await stream.CollectAsync();

        Assert.Contains(Assert.Single(result.Choices).Text, new[] { "yes.", "no." });
    }
}
