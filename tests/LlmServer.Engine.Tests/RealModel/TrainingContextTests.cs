using LlmServer.Engine.Models;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>
/// The automatic slot size (<c>Scheduler:ContextSize</c> 0) is the model's training context, read from the GGUF:
/// llama.cpp leaves it at 0 on weights loaded vocabulary-only, which once gave every model 8,192-token slots.
/// </summary>
public sealed class TrainingContextTests
{
    [Theory]
    [InlineData("stories260K.gguf", 2048)]
    [InlineData("llama-2-tiny-random.gguf", 4096)]
    public void Weights_loaded_vocabulary_only_report_the_training_context(string model, int trained)
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Find(model));

        Assert.Equal(trained, ModelLoader.TrainingContext(weights));
    }

    [Fact]
    public async Task With_no_context_size_each_slot_holds_the_training_context()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 2, contextSize: 0);
        try
        {
            Assert.Equal(2048, engine.Model!.TrainingContextLength);
            Assert.Equal(2048, engine.Model.SlotContextLength);
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }
}
