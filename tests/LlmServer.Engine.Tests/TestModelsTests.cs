using LlmServer.Testing;

namespace LlmServer.Engine.Tests;

public sealed class TestModelsTests
{
    [Fact]
    public void Finds_every_shared_model()
    {
        Assert.True(File.Exists(TestModels.Stories260K));
        Assert.True(File.Exists(TestModels.TinyRandomLlama2));
        Assert.True(File.Exists(TestModels.Phi3Vocab));
    }

    [Fact]
    public void Missing_model_fails_with_the_places_searched()
    {
        var error = Assert.Throws<FileNotFoundException>(() => TestModels.Find("no-such-model.gguf"));
        Assert.Contains("no-such-model.gguf", error.Message, StringComparison.Ordinal);
    }
}
