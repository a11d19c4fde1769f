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
        var steps = new StepRecorder();
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 4, contextSize: 4096, budget: Budget, stepObserver: steps);
        try
        {
            const string Story = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. ";
            var running = Enumerable.Range(0, 2)
                .Select(i => engine.Submit(new GenerationRequest { Prompt = Story + i, MaxTokens = 900, IgnoreEos = true }))
                .ToList();
            var readers = running.Select(s => s.ReadAllAsync().GetAsyncEnumerator()).ToList();
            foreach (var reader in readers)
            {
                Assert.True(await reader.MoveNextAsync());
            }

            // Both streams generate: from here every step decodes their two tokens, and the long prompt's chunks.
            steps.Recording = true;
            var longStream = engine.Submit(new GenerationRequest { Prompt = string.Concat(Enumerable.Repeat(Story, 24)), MaxTokens = 1 });
            var longResult = await longStream.CollectAsync();
            steps.Recording = false;
            Assert.Equal(1, longResult.Choices[0].Completion.Usage.CompletionTokens);

            var promptSteps = steps.Steps.Where(s => s.PromptTokens > 0).ToList();
            Assert.Equal(longStream.PromptTokens, promptSteps.Sum(s => s.PromptTokens));
            Assert.True(promptSteps.Count >= (longStream.PromptTokens + Budget - 3) / (Budget - 2), $"{longStream.PromptTokens} prompt tokens in {promptSteps.Count} steps");
            Assert.All(promptSteps, s => Assert.Equal(2, s.GenerationTokens));
            Assert.All(promptSteps, s => Assert.InRange(s.PromptTokens, 1, Budget - 2));

            foreach (var stream in running)
            {
                stream.Cancel();
            }

            foreach (var reader in readers)
            {
                while (await reader.MoveNextAsync())
                {
                }

                await reader.DisposeAsync();
            }
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }

    private sealed class StepRecorder : IStepObserver
    {
        private volatile bool _recording;

        public bool Recording
        {
            get => _recording;
            set => _recording = value;
        }

        public ConcurrentQueue<StepCost> Steps { get; } = new();

        public void OnStep(in StepCost cost)
        {
            if (_recording)
            {
                Steps.Enqueue(cost);
            }
        }
    }
}
