using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>Warm window slides and the disk KV cache on stories260K, end to end through the engine.</summary>
public sealed class KvCacheEngineTests : IDisposable
{
    private const string System = "Once upon a time there was a little girl named Lily. She was three years old.\n";
    private const string Dropped = "She liked to play with her red ball in the park with her mom and dad.\n";
    private const string Kept = "One day she saw a big brown dog near the tall tree. The dog was sad and wanted a friend.\n";
    private const string Next = "Lily said";

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "llmserver-kvreal-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task A_warm_slide_moves_the_kept_turn_and_prefills_only_what_is_new()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 2, contextSize: 1024, warmSlide: true);
        try
        {
            var session = "slide-" + Guid.NewGuid();
            await RunAsync(engine, System + Dropped + Kept, 1, session);
            var slid = System + Kept + Next;
            var warm = await RunAsync(engine, slid, 24, session);

            // The engine compares token ids: the system prompt's tokens stay, the kept turn's move down. The answer is
            // not compared with a cold prefill's: the moved cells still hold what the kept turn computed with the
            // dropped one in view (WindowSlideRealModelTests checks the default, exact slide).
            var before = engine.Tokenize(System + Dropped + Kept, addSpecial: true).ToArray();
            var after = engine.Tokenize(slid, addSpecial: true).ToArray();
            var plan = SlotTable.Plan(before, after, canShift: true);
            Assert.True(plan.KeptLength > 0, "the test's texts must give a kept span");
            Assert.Equal(plan.Reused, warm.Completion.Usage.CachedPromptTokens);
            var keptTokens = engine.Tokenize(Kept).Count;
            Assert.InRange(plan.KeptLength, keptTokens - 2, keptTokens + 2);
            Assert.Equal(24, warm.Completion.Usage.CompletionTokens);
        }
        finally
        {
            await StopAsync(engine);
        }
    }

    [Fact]
    public async Task An_evicted_session_is_restored_from_disk_with_every_token_it_had()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 1, contextSize: 512, kvCacheDirectory: _directory);
        try
        {
            var first = await RunAsync(engine, System + Dropped, 12, "a");
            await RunAsync(engine, "The cat sat on the mat and looked at the bird.", 12, "b");
            var second = await RunAsync(engine, System + Dropped + first.Text + " The end.", 4, "a");

            var usage = first.Completion.Usage;
            Assert.Equal(usage.PromptTokens + usage.CompletionTokens - 1, second.Completion.Usage.CachedPromptTokens);
        }
        finally
        {
            await StopAsync(engine);
        }
    }

    [Fact]
    public async Task A_state_saved_from_one_slot_restores_into_another()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 2, contextSize: 1024, kvCacheDirectory: _directory);
        try
        {
            // a takes slot 0 and b slot 1; c evicts a (least recently used) into slot 0; a's return evicts b and
            // lands in slot 1.
            var first = await RunAsync(engine, System + Dropped, 12, "a");
            await RunAsync(engine, "The cat sat on the mat and looked at the bird.", 8, "b");
            await RunAsync(engine, "A boy named Tim had a big blue boat.", 8, "c");
            var second = await RunAsync(engine, System + Dropped + first.Text + " The end.", 4, "a");

            var usage = first.Completion.Usage;
            Assert.Equal(usage.PromptTokens + usage.CompletionTokens - 1, second.Completion.Usage.CachedPromptTokens);
        }
        finally
        {
            await StopAsync(engine);
        }
    }

    [Fact]
    public async Task A_restarted_engine_restores_a_session_saved_at_shutdown()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 2, contextSize: 1024, kvCacheDirectory: _directory);
        GenerationChoiceResult first;
        try
        {
            first = await RunAsync(engine, System + Dropped, 12, "a");
        }
        finally
        {
            await StopAsync(engine);
        }

        Assert.Single(Directory.GetFiles(_directory, "*.kv"));
        var restarted = await RealEngine.StartAsync(TestModels.Stories260K, slots: 2, contextSize: 1024, kvCacheDirectory: _directory);
        try
        {
            var second = await RunAsync(restarted, System + Dropped + first.Text + " The end.", 4, "a");
            var usage = first.Completion.Usage;
            Assert.Equal(usage.PromptTokens + usage.CompletionTokens - 1, second.Completion.Usage.CachedPromptTokens);
        }
        finally
        {
            await StopAsync(restarted);
        }
    }

    [Fact]
    public async Task A_corrupt_state_file_is_prefilled_without_an_error()
    {
        var first = await SaveOneSessionAsync(TestModels.Stories260K);
        foreach (var file in Directory.GetFiles(_directory, "*.kv"))
        {
            var bytes = File.ReadAllBytes(file);
            bytes[bytes.Length / 2] ^= 0x40;
            File.WriteAllBytes(file, bytes);
        }

        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 2, contextSize: 1024, kvCacheDirectory: _directory);
        try
        {
            var second = await RunAsync(engine, System + Dropped + first.Text + " The end.", 4, "a");
            Assert.Equal(0, second.Completion.Usage.CachedPromptTokens);
            Assert.Null(second.Completion.Error);
            Assert.Equal(4, second.Completion.Usage.CompletionTokens);
        }
        finally
        {
            await StopAsync(engine);
        }
    }

    [Fact]
    public async Task Another_models_state_is_never_restored()
    {
        await SaveOneSessionAsync(TestModels.Stories260K);
        var engine = await RealEngine.StartAsync(TestModels.TinyRandomLlama2, slots: 2, contextSize: 1024, kvCacheDirectory: _directory);
        try
        {
            var other = await RunAsync(engine, System + Dropped + " The end.", 4, "a");
            Assert.Equal(0, other.Completion.Usage.CachedPromptTokens);
            Assert.Null(other.Completion.Error);
        }
        finally
        {
            await StopAsync(engine);
        }

        // The first model's state is still there for it, beside the second model's.
        Assert.Equal(2, Directory.GetFiles(_directory, "*.kv").Length);
    }

    [Fact]
    public async Task A_quantized_KV_cache_generates_with_flash_attention_turned_on()
    {
        var engine = await RealEngine.StartAsync(TestModels.Synth110M, slots: 2, contextSize: 512, kvCacheType: "q8_0");
        try
        {
            var answer = await RunAsync(engine, System, 8, "q8");
            Assert.Equal(8, answer.Completion.Usage.CompletionTokens);
            Assert.NotEmpty(answer.Text);
        }
        finally
        {
            await StopAsync(engine);
        }
    }

    [Fact]
    public void A_quantized_KV_cache_whose_blocks_do_not_fit_the_heads_is_refused_with_the_reason()
    {
        // stories260K's heads hold 8 values; q8_0 stores blocks of 32 (llama.cpp would abort at the first decode).
        using var weights = ModelLoader.LoadVocabularyOnly(TestModels.Stories260K);
        var error = Assert.Throws<InvalidOperationException>(() => KvCacheMemory.EnsureFits(weights.Metadata, "q8_0"));
        Assert.Contains("blocks of 32", error.Message, StringComparison.Ordinal);
        KvCacheMemory.EnsureFits(weights.Metadata, "f16");
    }

    [Theory]
    [InlineData("q8_0", false, "needs flash attention")]
    [InlineData("q3_k", null, "is not a KV cache type")]
    public void Bad_KV_cache_settings_are_refused_at_start(string type, bool? flashAttention, string message)
    {
        var result = new SchedulerOptionsValidator().Validate(null, new SchedulerOptions { KvCacheType = type, FlashAttention = flashAttention });
        Assert.True(result.Failed);
        Assert.Contains(message, result.FailureMessage, StringComparison.Ordinal);
        Assert.True(new SchedulerOptionsValidator().Validate(null, new SchedulerOptions { KvCacheType = "Q8_0" }).Succeeded);
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private async Task<GenerationChoiceResult> SaveOneSessionAsync(string model)
    {
        var engine = await RealEngine.StartAsync(model, slots: 2, contextSize: 1024, kvCacheDirectory: _directory);
        try
        {
            return await RunAsync(engine, System + Dropped, 12, "a");
        }
        finally
        {
            await StopAsync(engine);
        }
    }

    private static async Task<GenerationChoiceResult> RunAsync(LlmEngine engine, string prompt, int maxTokens, string session)
    {
        var result = await engine.Submit(new GenerationRequest { Prompt = prompt, MaxTokens = maxTokens, IgnoreEos = true, SessionKey = session, Sampling = new() { Temperature = 0 } }).CollectAsync();
        var choice = result.Choices[0];
        Assert.Null(choice.Completion.Error);
        return choice;
    }

    private static async Task StopAsync(LlmEngine engine)
    {
        await engine.StopAsync(CancellationToken.None);
        engine.Dispose();
    }
}
