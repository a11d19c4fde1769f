using LlmServer.Engine.Generation;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>On stories260K, 2 slots: the batch lane under a steady interactive stream.</summary>
public sealed class BatchLaneRealModelTests
{
    private const string Story = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. ";

    [Fact]
    public async Task A_batch_job_finishes_while_an_interactive_stream_keeps_one_request_running_after_another()
    {
        var engine = await RealEngine.StartAsync(TestModels.Stories260K, slots: 2, contextSize: 1024);
        try
        {
            var batch = Enumerable.Range(0, 12)
                .Select(i => engine.Submit(new GenerationRequest { Prompt = Story + i, MaxTokens = 48, IgnoreEos = true, Priority = RequestPriority.Batch }))
                .ToList();
            var batchDone = Task.WhenAll(batch.Select(s => s.CollectAsync()));

            // The interactive client sends its next request as soon as the last one ended, until the batch is done.
            var interactive = 0;
            do
            {
                var result = await engine.Submit(new GenerationRequest { Prompt = Story + "Tom " + interactive, MaxTokens = 8, IgnoreEos = true }).CollectAsync();
                Assert.Equal(8, result.Choices[0].Completion.Usage.CompletionTokens);
                Assert.Equal(FinishReason.Length, result.Choices[0].Completion.FinishReason);
                interactive++;
                Assert.True(interactive < 1000, "the batch job made no progress beside the interactive stream");
            }
            while (!batchDone.IsCompleted);

            Assert.All(await batchDone, r =>
            {
                Assert.Equal(48, r.Choices[0].Completion.Usage.CompletionTokens);
                Assert.Equal(FinishReason.Length, r.Choices[0].Completion.FinishReason);
            });
            await RealEngine.WaitUntilIdleAsync(engine);
        }
        finally
        {
            await engine.StopAsync(CancellationToken.None);
            engine.Dispose();
        }
    }
}
