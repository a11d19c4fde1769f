using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Prompting;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.RealModel;

public sealed class OtherModelTests
{
    [Fact]
    public async Task Tiny_random_llama2_generates_reproducibly_with_its_32k_vocabulary()
    {
        var engine = await RealEngine.StartAsync(TestModels.TinyRandomLlama2, slots: 2, contextSize: 1024);
        try
        {
            Assert.Equal(32000, engine.Model!.VocabularySize);
            var request = new GenerationRequest { Prompt = "Hello, my name is", MaxTokens = 16, IgnoreEos = true, Sampling = new() { Temperature = 0.7f, Seed = 5 } };
            var first = await engine.Submit(request).CollectAsync();
            var second = await engine.Submit(request).CollectAsync();
            Assert.Equal(16, first.Choices[0].Completion.Usage.CompletionTokens);
            Assert.Equal(first.Choices[0].Text, second.Choices[0].Text);
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }

    [Fact]
    public void The_models_own_chat_template_renders_phi3_turns()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        Assert.True(ModelLoader.HasChatTemplate(weights));
        var formatter = new ChatPromptFormatter(weights.NativeHandle, modelHasTemplate: true, "plain", forceFallback: false);
        var prompt = formatter.Format([new ChatTurn("developer", "Be brief."), new ChatTurn("user", "Hi there")], addAssistantPrompt: true);
        Assert.Contains("<|user|>\nHi there<|end|>", prompt, StringComparison.Ordinal);
        Assert.EndsWith("<|assistant|>\n", prompt, StringComparison.Ordinal);

        // The template's markers are single special tokens once parsed as such.
        var tokens = weights.NativeHandle.Tokenize(prompt, false, true, System.Text.Encoding.UTF8);
        Assert.Contains(tokens, t => (int)t == 32010);
    }

    [Fact]
    public void A_named_fallback_template_is_applied_by_llama_cpp()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var formatter = new ChatPromptFormatter(weights.NativeHandle, modelHasTemplate: true, "chatml", forceFallback: true);
        var prompt = formatter.Format([new ChatTurn("user", "Hi")], addAssistantPrompt: true);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt);
    }
}
