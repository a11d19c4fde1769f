using System.Collections.Concurrent;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>On stories260K: a long prompt is admitted in chunks while running streams keep generating.</summary>
public sealed class StepBudgetRealModelTests
{
    private const int Budget = 64;

    [Fact]
    public async Task Running_streams_get_a_token_in_every_step_while_a_long_prompt_is_admitted()
    {
        const string Story = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. ";
        var steps = new StepRecorder();
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 4, contextSize: 4096, budget: Budget, stepObserver: steps);
        try
        {
            // The long prompt is submitted from the scheduler's own thread at the first step in which both streams
            // generate, so they are certainly still running while it is admitted, however busy the machine.
            steps.SubmitWhenGenerating = () => engine.Submit(new GenerationRequest { Prompt = string.Concat(Enumerable.Repeat(Story, 24)), MaxTokens = 1 });
            var running = Enumerable.Range(0, 2)
                .Select(i => engine.Submit(new GenerationRequest { Prompt = Story + i, MaxTokens = 900, IgnoreEos = true }))
                .ToList();
            var longStream = await steps.Submitted.Task;
            var longResult = await longStream.CollectAsync();
            Assert.Equal(1, longResult.Choices[0].Completion.Usage.CompletionTokens);

            var promptSteps = steps.StepsUntil(longStream.PromptTokens);
            Assert.Equal(longStream.PromptTokens, promptSteps.Sum(s => s.PromptTokens));
            Assert.True(promptSteps.Count >= (longStream.PromptTokens + Budget - 3) / (Budget - 2), $"{longStream.PromptTokens} prompt tokens in {promptSteps.Count} steps");
            Assert.All(promptSteps, s => Assert.Equal(2, s.GenerationTokens));
            Assert.All(promptSteps, s => Assert.InRange(s.PromptTokens, 1, Budget - 2));

            foreach (var stream in running)
            {
                stream.Cancel();
                Assert.Equal(FinishReason.Cancelled, (await stream.CollectAsync()).Choices[0].Completion.FinishReason);
            }
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }

    /// <summary>Runs on the scheduler thread: submits the long prompt once two streams generate, then records steps.</summary>
    private sealed class StepRecorder : IStepObserver
    {
        private readonly ConcurrentQueue<StepCost> _steps = new();

        public Func<GenerationStream>? SubmitWhenGenerating { get; set; }

        public TaskCompletionSource<GenerationStream> Submitted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void OnStep(in StepCost cost)
        {
            if (Submitted.Task.IsCompleted)
            {
                _steps.Enqueue(cost);
            }
            else if (cost.GenerationTokens == 2 && SubmitWhenGenerating is { } submit)
            {
                try
                {
                    Submitted.SetResult(submit());
                }
                catch (GenerationException ex)
                {
                    Submitted.SetException(ex);
                }
            }
        }

        /// <summary>The steps after the submission that carried prompt tokens, until <paramref name="promptTokens"/> went in.</summary>
        public List<StepCost> StepsUntil(int promptTokens)
        {
            var result = new List<StepCost>();
            var total = 0;
            foreach (var step in _steps)
            {
                if (total >= promptTokens)
                {
                    break;
                }

                if (step.PromptTokens > 0)
                {
                    result.Add(step);
                    total += step.PromptTokens;
                }
            }

            return result;
        }
    }
}
