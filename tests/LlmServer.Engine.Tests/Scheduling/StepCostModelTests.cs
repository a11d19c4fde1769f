using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>The cost model's fit, fed exact step times: it must recover the parts that made them.</summary>
public sealed class StepCostModelTests
{
    [Fact]
    public void A_prompt_cost_that_grows_with_depth_is_fitted_part_by_part()
    {
        // 3 ms fixed, 1 ms a token, 5 ms per thousand positions attended over, beside 2 sequences generating in 4 ms.
        var model = Learn(new PromptCost(3, 1, 5));

        var prompt = Assert.NotNull(model.Prompt);
        Assert.Equal(3, prompt.FixedMs, 6);
        Assert.Equal(1, prompt.PerTokenMs, 6);

        // 10 tokens 1,500 deep cost 10 + 5 * 15.045 ms beyond the fixed part.
        Assert.Equal(10 + (5 * 15.045), prompt.TokensMs(1500, 10), 6);
    }

    [Fact]
    public void A_prompt_cost_that_does_not_grow_with_depth_is_fitted_as_a_line()
    {
        var model = Learn(new PromptCost(3, 2, 0));

        var prompt = Assert.NotNull(model.Prompt);
        Assert.Equal(new PromptCost(3, 2, 0), prompt with { FixedMs = Math.Round(prompt.FixedMs, 6), PerTokenMs = Math.Round(prompt.PerTokenMs, 6) });
    }

    [Fact]
    public void A_fixed_part_beyond_the_quickest_generating_step_is_held_at_it_and_the_rest_refitted()
    {
        // Noise can put most of a step's time in the fixed part, but a chunk's own micro-batch costs no more than a
        // whole step that generates (4 ms here).
        var model = Learn(new PromptCost(30, 1, 0));

        var prompt = Assert.NotNull(model.Prompt);
        Assert.Equal(4, prompt.FixedMs, 6);
        Assert.True(prompt.PerTokenMs > 1, $"the 26 ms left over go to the tokens: {prompt}");
    }

    [Fact]
    public void A_depth_fit_follows_a_machine_that_got_slower_while_sizes_and_depths_move_together()
    {
        // The planner has settled: its chunks (two sizes at the prompt's start) vary in size and depth together, so
        // the depth term cannot be fitted again. Then the machine becomes twice as slow: the fit must follow.
        var truth = new PromptCost(3, 1, 5);
        var model = Learn(truth);
        Settle(model, truth);
        var slower = new PromptCost(6, 2, 10);
        Settle(model, slower);

        var prompt = Assert.NotNull(model.Prompt);
        var expected = slower.FixedMs + slower.TokensMs(0, 50);
        var estimate = prompt.FixedMs + prompt.TokensMs(0, 50);
        Assert.True(Math.Abs(estimate - expected) < 0.01 * expected, $"{estimate} ms estimated for {expected} ms: {prompt}");

        static void Settle(StepCostModel model, PromptCost truth)
        {
            // Long enough that the steps before weigh nothing.
            for (var i = 0; i < 1000; i++)
            {
                model.OnStep(Step(generating: 0, tokens: i % 2 == 0 ? 38 : 50, start: 0, truth, generationMs: 0));
            }
        }
    }

    [Fact]
    public void Before_chunk_sizes_spread_the_cost_is_taken_as_proportional_to_the_tokens()
    {
        var model = new StepCostModel(slots: 4);
        Assert.Null(model.Prompt);

        model.OnStep(Step(generating: 0, tokens: 50, start: 0, new PromptCost(10, 1, 0), generationMs: 0));
        Assert.Equal(new PromptCost(0, 60.0 / 50, 0), model.Prompt);
    }

    [Fact]
    public void Generation_times_are_learnt_per_number_of_generating_sequences()
    {
        var model = new StepCostModel(slots: 4);
        Assert.Equal(0, model.KnownGenerationMs(2));

        model.OnStep(new StepCost(2, 0, 0, 0, TimeSpan.FromMilliseconds(8), TimeSpan.FromMilliseconds(8)));
        Assert.Equal(8, model.KnownGenerationMs(2));

        // An unseen count is estimated per token from what was seen.
        Assert.Equal(12, model.KnownGenerationMs(3));
        Assert.Equal(0, model.KnownGenerationMs(0));
    }

    /// <summary>A prefill as the planner makes one: chunks that shrink as they go deeper, two streams generating.</summary>
    private static StepCostModel Learn(PromptCost truth)
    {
        const double generationMs = 4;
        var model = new StepCostModel(slots: 4);
        model.OnStep(new StepCost(2, 0, 0, 0, TimeSpan.FromMilliseconds(generationMs), TimeSpan.FromMilliseconds(generationMs)));
        var start = 0;
        foreach (var tokens in new[] { 64, 96, 48, 80, 40, 72, 24, 56, 32, 16, 64, 8, 48 })
        {
            model.OnStep(Step(generating: 2, tokens, start, truth, generationMs));
            start += tokens * 3;
        }

        return model;
    }

    private static StepCost Step(int generating, int tokens, int start, PromptCost truth, double generationMs)
    {
        var ms = generationMs + truth.FixedMs + truth.TokensMs(start, tokens);
        return new StepCost(generating, tokens, PromptCost.Positions(start, tokens), 1, TimeSpan.FromMilliseconds(ms), TimeSpan.FromMilliseconds(ms));
    }
}
