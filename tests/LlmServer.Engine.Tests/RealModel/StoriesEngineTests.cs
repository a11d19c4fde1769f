using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>End to end on stories260K (trained, 512-token vocabulary) with 8 slots.</summary>
public sealed class StoriesEngineTests(StoriesEngineFixture fixture) : IClassFixture<StoriesEngineFixture>
{
    private const string Prompt = "Once upon a time, there was a little girl named Lily.";

    private ITextGenerator Engine => fixture.Engine;

    [Fact]
    public void Reports_the_model_metadata()
    {
        var model = Engine.Model!;
        Assert.Equal("llama", model.Architecture);
        Assert.Equal(512, model.VocabularySize);
        Assert.Equal(2048, model.TrainingContextLength);
        Assert.False(model.HasChatTemplate);
        Assert.InRange(model.ParameterCount, 250_000UL, 350_000UL);
        Assert.Equal(8, model.Slots);
        Assert.Equal(1024, model.SlotContextLength);
        Assert.StartsWith("CPU", model.Backend.Kind, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generates_text_with_usage()
    {
        var choice = await RunAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 24, Sampling = new() { Temperature = 0 } });
        Assert.False(string.IsNullOrWhiteSpace(choice.Text));
        Assert.InRange(choice.Completion.Usage.CompletionTokens, 1, 24);
        Assert.True(choice.Completion.Usage.PromptTokens > 10);
    }

    [Fact]
    public async Task A_fixed_seed_gives_the_same_text_twice()
    {
        var request = new GenerationRequest { Prompt = Prompt, MaxTokens = 40, Sampling = new() { Temperature = 0.9f, TopP = 0.95f, Seed = 1234 } };
        var first = await RunAsync(request);
        var second = await RunAsync(request);
        Assert.Equal(first.Text, second.Text);
        var other = await RunAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 40, Sampling = new() { Temperature = 0.9f, TopP = 0.95f, Seed = 99 } });
        Assert.NotEqual(first.Text, other.Text);
    }

    [Theory]
    [InlineData(4294967295L)]
    [InlineData(-1L)]
    [InlineData(8589934591L)]
    [InlineData(0L)]
    public async Task Every_client_seed_gives_the_same_text_twice(long clientSeed)
    {
        // 0xFFFFFFFF in the low half once reached llama.cpp as its "random seed" value.
        var request = new GenerationRequest { Prompt = Prompt, MaxTokens = 40, Sampling = new() { Temperature = 0.9f, TopP = 0.95f, Seed = SamplingOptions.SeedFrom(clientSeed) } };
        var first = await RunAsync(request);
        var second = await RunAsync(request);
        Assert.Equal(first.Text, second.Text);
    }

    [Fact]
    public async Task Eight_concurrent_requests_all_complete_with_the_right_token_counts()
    {
        var streams = Enumerable.Range(0, 8)
            .Select(i => Engine.Submit(new GenerationRequest { Prompt = $"{Prompt} Day {i}.", MaxTokens = 20 + i, IgnoreEos = true, Sampling = new() { Seed = (uint)i } }))
            .ToList();
        var results = await Task.WhenAll(streams.Select(s => s.CollectAsync()));
        for (var i = 0; i < 8; i++)
        {
            var completion = results[i].Choices[0].Completion;
            Assert.Equal(FinishReason.Length, completion.FinishReason);
            Assert.Equal(20 + i, completion.Usage.CompletionTokens);
        }
    }

    [Fact]
    public async Task Greedy_requests_batched_together_match_each_other_and_the_request_alone()
    {
        var request = new GenerationRequest { Prompt = Prompt, MaxTokens = 32, IgnoreEos = true, Sampling = new() { Temperature = 0 } };
        await RealEngine.WaitUntilIdleAsync(fixture.Engine);
        var alone = (await RunAsync(request)).Text;
        var batched = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Engine.Submit(request).CollectAsync()));
        var texts = batched.Select(r => r.Choices[0].Text).ToList();

        // llama.cpp's batched matrix kernels may sum in another order than the single-sequence ones, so a long
        // greedy continuation can drift where two tokens are nearly tied; the first 16 tokens' text is stable here.
        var stable = alone[..Math.Min(alone.Length, 40)];
        Assert.All(texts, t => Assert.StartsWith(stable, t, StringComparison.Ordinal));
        Assert.All(texts, t => Assert.Equal(texts[0], t));
    }

    [Fact]
    public async Task A_sessions_second_turn_reports_cached_prompt_tokens()
    {
        var session = "session-" + Guid.NewGuid();
        const string Opening = "The big red ball rolled down the hill.";
        var first = await RunAsync(new GenerationRequest { Prompt = Opening, MaxTokens = 16, IgnoreEos = true, SessionKey = session, Sampling = new() { Temperature = 0 } });
        // Only the BOS token can be shared with an earlier request's cache.
        Assert.InRange(first.Completion.Usage.CachedPromptTokens, 0, 1);
        var second = await RunAsync(new GenerationRequest { Prompt = Opening + first.Text + " The end.", MaxTokens = 4, SessionKey = session, Sampling = new() { Temperature = 0 } });
        Assert.True(
            second.Completion.Usage.CachedPromptTokens >= first.Completion.Usage.PromptTokens,
            $"cached {second.Completion.Usage.CachedPromptTokens} < first prompt {first.Completion.Usage.PromptTokens}");
    }

    [Fact]
    public async Task A_chat_sessions_second_turn_reuses_the_whole_first_conversation()
    {
        var session = "chat-" + Guid.NewGuid();
        var history = new List<ChatTurn> { new("system", "Stories about a red kite."), new("user", "Tell me about the kite.") };
        var first = await RunAsync(new GenerationRequest { Messages = history.ToArray(), MaxTokens = 20, IgnoreEos = true, SessionKey = session, Sampling = new() { Temperature = 0 } });
        history.Add(new ChatTurn("assistant", first.Text));
        history.Add(new ChatTurn("user", "And then?"));
        var second = await RunAsync(new GenerationRequest { Messages = history.ToArray(), MaxTokens = 4, SessionKey = session, Sampling = new() { Temperature = 0 } });

        // Everything the first turn left in the KV: its prompt and its answer but the last sampled token.
        var firstUsage = first.Completion.Usage;
        Assert.Equal(firstUsage.PromptTokens + firstUsage.CompletionTokens - 1, second.Completion.Usage.CachedPromptTokens);
    }

    [Fact]
    public async Task A_cancelled_request_frees_its_slot()
    {
        using var cts = new CancellationTokenSource();
        var seen = 0;
        var finish = FinishReason.Stop;

        // The gate holds the scheduler past the first tokens until the cancel is made: unheld, the engine can write
        // all 900 tokens before this reader has seen 3.
        fixture.Gate.CloseAfter(4);
        try
        {
            var stream = Engine.Submit(new GenerationRequest { Prompt = Prompt, MaxTokens = 900, IgnoreEos = true }, cts.Token);
            await foreach (var item in stream.ReadAllAsync())
            {
                if (item is TextDelta && ++seen == 3)
                {
                    await cts.CancelAsync();
                    fixture.Gate.Open();
                }

                if (item is GenerationCompleted done)
                {
                    finish = done.FinishReason;
                }
            }
        }
        finally
        {
            fixture.Gate.Open();
        }

        Assert.Equal(FinishReason.Cancelled, finish);
        await RealEngine.WaitUntilIdleAsync(fixture.Engine);
        Assert.Equal(0, Engine.GetStatus().Running);
    }

    [Fact]
    public async Task Two_choices_fork_the_prompt_cache_and_match_the_single_choice_text()
    {
        var single = await RunAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 12, IgnoreEos = true, Sampling = new() { Temperature = 0 } });
        var result = await Engine.Submit(new GenerationRequest { Prompt = Prompt, MaxTokens = 12, IgnoreEos = true, Choices = 2, Sampling = new() { Temperature = 0 } }).CollectAsync();
        Assert.Equal(2, result.Choices.Count);
        Assert.All(result.Choices, c => Assert.Equal(single.Text, c.Text));
    }

    [Fact]
    public async Task A_grammar_constrains_the_output()
    {
        var choice = await RunAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 10, Grammar = "root ::= \"yes\" | \"no\"", Sampling = new() { Temperature = 0.8f, Seed = 7 } });
        Assert.Contains(choice.Text, new[] { "yes", "no" });
        Assert.Equal(FinishReason.Stop, choice.Completion.FinishReason);
    }

    [Fact]
    public void A_grammar_that_does_not_parse_is_an_invalid_request()
    {
        var error = Assert.Throws<GenerationException>(() => Engine.Submit(new GenerationRequest { Prompt = Prompt, Grammar = "root ::= (" }));
        Assert.Equal(GenerationErrorCode.InvalidRequest, error.Code);
        Assert.Equal(GenerationField.Grammar, error.Field);
        Assert.Contains("line 1, column 11: expecting ')'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Log_probabilities_are_reported_per_token()
    {
        var choice = await RunAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 5, IgnoreEos = true, LogProbs = true, TopLogProbs = 3, Sampling = new() { Temperature = 0 } });
        Assert.Equal(5, choice.LogProbs!.Count);
        foreach (var token in choice.LogProbs)
        {
            Assert.True(token.LogProb <= 0);
            Assert.Equal(3, token.TopLogProbs.Count);
            Assert.True(token.TopLogProbs[0].LogProb >= token.TopLogProbs[1].LogProb);

            // Greedy picks the most likely token.
            Assert.Equal(token.TopLogProbs[0].TokenId, token.TokenId);
        }
    }

    [Fact]
    public async Task Stop_sequences_cut_real_output()
    {
        var free = await RunAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 40, IgnoreEos = true, Sampling = new() { Temperature = 0 } });
        var cut = free.Text.IndexOf(' ', 5);
        Assert.True(cut > 0, "need a word boundary in: " + free.Text);
        var stop = free.Text.Substring(cut, 3);
        var stopped = await RunAsync(new GenerationRequest { Prompt = Prompt, MaxTokens = 40, IgnoreEos = true, Stop = [stop], Sampling = new() { Temperature = 0 } });
        Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.Equal(FinishReason.Stop, stopped.Completion.FinishReason);
    }

    [Fact]
    public void Bad_sampling_values_are_refused_with_the_field_name()
    {
        var error = Assert.Throws<GenerationException>(() => Engine.Submit(new GenerationRequest { Prompt = Prompt, Sampling = new() { TopP = 0 } }));
        Assert.Equal(GenerationField.TopP, error.Field);
    }

    [Fact]
    public void A_prompt_over_the_slot_context_is_refused()
    {
        var error = Assert.Throws<GenerationException>(() => Engine.Submit(new GenerationRequest { Prompt = string.Concat(Enumerable.Repeat(Prompt, 120)) }));
        Assert.Equal(GenerationErrorCode.ContextLengthExceeded, error.Code);
        Assert.Equal(1024, error.ContextLength);
    }

    [Fact]
    public void Chat_messages_use_the_fallback_template_for_a_base_model()
    {
        var prompt = Engine.ApplyChatTemplate([new ChatTurn("system", "Be kind."), new ChatTurn("user", "Tell a story.")], []);
        Assert.Equal("Be kind.\n\nUser: Tell a story.\nAssistant:", prompt);
    }

    [Fact]
    public void Tokenize_and_detokenize_round_trip()
    {
        var tokens = Engine.Tokenize("Lily went to the park.");
        Assert.NotEmpty(tokens);
        Assert.Equal("Lily went to the park.", Engine.Detokenize(tokens).TrimStart());
    }

    [Fact]
    public void Detokenize_renders_control_tokens_as_their_text()
    {
        // As llama-server's /detokenize and /tokenize's pieces do (its token pieces are rendered special).
        var tokens = Engine.Tokenize("Lily", addSpecial: true);
        var bos = Assert.Single(Engine.Tokenize("<s>", parseSpecial: true));

        Assert.Equal(bos, tokens[0]);
        Assert.Equal("<s>", Engine.Detokenize([bos]));
        Assert.Equal("<s>" + Engine.Detokenize(tokens.Skip(1)), Engine.Detokenize(tokens));
    }

    private async Task<GenerationChoiceResult> RunAsync(GenerationRequest request) =>
        (await Engine.Submit(request).CollectAsync()).Choices[0];
}
