using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Prompting;
using LlmServer.Templating.Chat;
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
        var formatter = ChatPromptFormatter.Create(weights, new ModelOptions(), TimeProvider.System);
        Assert.Equal(ChatTemplateInfo.GgufOrigin, formatter.Info.Origin);
        Assert.Equal(ModelLoader.ReadChatTemplate(weights), formatter.Info.Source);
        var prompt = formatter.Format([new ChatTurn("developer", "Be brief."), new ChatTurn("user", "Hi there")], [], addAssistantPrompt: true);
        // Phi-3's template has no system role: as llama.cpp does, the system (developer) message joins the first user turn.
        Assert.False(formatter.Info.Capabilities!.SupportsSystemRole);
        Assert.Contains("<|user|>\nBe brief.\nHi there<|end|>", prompt, StringComparison.Ordinal);
        Assert.EndsWith("<|assistant|>\n", prompt, StringComparison.Ordinal);

        // The template's markers are single special tokens once parsed as such.
        var tokens = weights.NativeHandle.Tokenize(prompt, false, true, System.Text.Encoding.UTF8);
        Assert.Contains(tokens, t => (int)t == 32010);
    }

    [Theory]
    [InlineData("basic")]
    [InlineData("multi-turn")]
    [InlineData("tool-round-trip")]
    public void The_engine_renders_the_gguf_template_as_the_renderer_does(string caseName)
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var formatter = ChatPromptFormatter.Create(weights, new ModelOptions(), TimeProvider.System);
        var (turns, tools) = FixtureCase(caseName);

        // The renderer on its own, given the GGUF's template and the vocabulary's BOS and EOS as llama.cpp gives them.
        var direct = ChatTemplate.Parse(ModelLoader.ReadChatTemplate(weights)!, new ChatTemplateOptions
        {
            BosToken = "<s>",
            EosToken = "<|endoftext|>",
            AddBos = weights.Vocab.ShouldAddBOS,
        });
        var expected = direct.Render(new ChatTemplateRequest(turns.Select(t => new ChatTemplateMessage(t.Role, t.Content)
        {
            ToolCalls = t.ToolCalls?.Select(c => new ChatTemplateToolCall(c.Id, c.Name, c.Arguments)).ToList(),
            ToolCallId = t.ToolCallId,
        }).ToList())
        {
            Tools = tools.Select(t => new ChatTemplateTool(t.Name, t.Description, t.Parameters?.GetRawText())).ToList(),
        });

        Assert.Equal(expected, formatter.Format(turns, tools, addAssistantPrompt: true));
        if (caseName == "basic")
        {
            Assert.Equal("<|user|>\nYou are a helpful assistant.\nHello! Who are you?<|end|>\n<|assistant|>\n", expected);
        }
    }

    [Theory]
    [InlineData("multi-turn")]
    [InlineData("tools-offered")]
    [InlineData("tool-round-trip")]
    [InlineData("parallel-calls")]
    public void A_chat_template_file_replaces_the_models_template(string caseName)
    {
        // Qwen 2.5's template, as llama.cpp rendered it with <s> as BOS (the phi-3 vocabulary's BOS too).
        const string Template = "Qwen-Qwen2.5-7B-Instruct";
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var file = Path.Combine(ChatTemplateFixtures.Root, "templates", Template + ".jinja");
        var formatter = ChatPromptFormatter.Create(weights, new ModelOptions { ChatTemplateFile = file }, TimeProvider.System);
        Assert.Equal(ChatTemplateInfo.FileOrigin, formatter.Info.Origin);
        Assert.True(formatter.Info.Capabilities!.SupportsTools);
        var (turns, tools) = FixtureCase(caseName);
        Assert.Equal(ChatTemplateFixtures.ExpectedPrompt(Template, caseName), formatter.Format(turns, tools, addAssistantPrompt: true));
    }

    [Fact]
    public void A_template_refusal_is_a_template_refused_error_with_the_templates_message()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var file = Path.Combine(ChatTemplateFixtures.Root, "templates", "google-gemma-2-2b-it.jinja");
        var formatter = ChatPromptFormatter.Create(weights, new ModelOptions { ChatTemplateFile = file }, TimeProvider.System);
        var (turns, tools) = FixtureCase("tool-round-trip");
        var error = Assert.Throws<GenerationException>(() => formatter.Format(turns, tools, addAssistantPrompt: true));
        Assert.Equal(GenerationErrorCode.TemplateRefused, error.Code);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", error.Message);
    }

    [Fact]
    public void A_named_fallback_template_is_applied_by_llama_cpp()
    {
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Phi3Vocab);
        var formatter = ChatPromptFormatter.Create(weights, new ModelOptions { FallbackChatTemplate = "chatml", ForceFallbackChatTemplate = true }, TimeProvider.System);
        Assert.Equal(ChatTemplateInfo.FallbackOrigin, formatter.Info.Origin);
        Assert.Null(formatter.Info.Source);
        var prompt = formatter.Format([new ChatTurn("user", "Hi")], [], addAssistantPrompt: true);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt);
    }

    // A fixture case (an OpenAI request body) as engine turns and tools.
    internal static (List<ChatTurn> Turns, List<ToolDefinition> Tools) FixtureCase(string caseName)
    {
        using var document = JsonDocument.Parse(ChatTemplateFixtures.CaseJson(caseName));
        var turns = new List<ChatTurn>();
        foreach (var message in document.RootElement.GetProperty("messages").EnumerateArray())
        {
            var content = message.GetProperty("content");
            turns.Add(new ChatTurn(message.GetProperty("role").GetString()!, content.ValueKind == JsonValueKind.String ? content.GetString() : null)
            {
                ToolCalls = message.TryGetProperty("tool_calls", out var calls)
                    ? calls.EnumerateArray().Select(c => new ToolCall(
                        c.GetProperty("id").GetString()!,
                        c.GetProperty("function").GetProperty("name").GetString()!,
                        c.GetProperty("function").GetProperty("arguments").GetString()!)).ToList()
                    : null,
                ToolCallId = message.TryGetProperty("tool_call_id", out var id) ? id.GetString() : null,
            });
        }

        var tools = new List<ToolDefinition>();
        if (document.RootElement.TryGetProperty("tools", out var toolList))
        {
            foreach (var tool in toolList.EnumerateArray())
            {
                var function = tool.GetProperty("function");
                tools.Add(new ToolDefinition(
                    function.GetProperty("name").GetString()!,
                    function.GetProperty("description").GetString(),
                    function.GetProperty("parameters").Clone()));
            }
        }

        return (turns, tools);
    }
}
