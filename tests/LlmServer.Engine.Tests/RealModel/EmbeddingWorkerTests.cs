using System.Diagnostics.Metrics;
using LlmServer.Engine.Embeddings;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;
using LlmServer.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>The embedding worker on stories260K, its decode work read from its own meter.</summary>
public sealed class EmbeddingWorkerTests
{
    private static readonly EmbeddingInput[] Inputs = [new("Once upon a time", null), new(null, [1, 2, 3])];

    [Fact]
    public async Task Dimensions_other_than_the_model_size_are_refused_before_any_token_is_decoded()
    {
        using var meters = new TestMeterFactory();
        using var worker = new EmbeddingWorker(
            Options.Create(new EmbeddingOptions { ContextSize = 256 }),
            Options.Create(new ModelOptions { Path = TestModels.Stories260K, Threads = 1, BatchThreads = 1 }),
            NullLogger<EmbeddingWorker>.Instance,
            meters);
        long decoded = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == SchedulerMetrics.MeterName && instrument.Meter.Scope == meters && instrument.Name == "llmserver.embedding_tokens")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref decoded, value));
        listener.Start();

        // The first request loads the model: the size is known only then, and still nothing is decoded.
        var refused = await Assert.ThrowsAsync<GenerationException>(() => worker.EmbedAsync(Inputs, dimensions: 100_000));
        Assert.Equal(GenerationErrorCode.InvalidRequest, refused.Code);
        Assert.Equal(GenerationField.Dimensions, refused.Field);
        Assert.Equal(0, Interlocked.Read(ref decoded));

        var result = await worker.EmbedAsync(Inputs);
        var size = result.Vectors[0].Length;
        Assert.Equal(result.PromptTokens, Interlocked.Read(ref decoded));
        Assert.Contains($"must be {size}", refused.Message, StringComparison.Ordinal);

        // The model's own size is accepted; any other is refused with nothing more decoded.
        var sized = await worker.EmbedAsync(Inputs, dimensions: size);
        Assert.Equal(size, sized.Vectors[1].Length);
        var decodedBefore = Interlocked.Read(ref decoded);
        Assert.Equal(2 * result.PromptTokens, decodedBefore);
        await Assert.ThrowsAsync<GenerationException>(() => worker.EmbedAsync(Inputs, dimensions: size - 1));
        Assert.Equal(decodedBefore, Interlocked.Read(ref decoded));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_request_after_the_worker_stopped_is_refused_at_once_without_loading_the_model(bool disposed)
    {
        var worker = new EmbeddingWorker(
            Options.Create(new EmbeddingOptions { ContextSize = 256 }),
            Options.Create(new ModelOptions { Path = TestModels.Stories260K, Threads = 1, BatchThreads = 1 }),
            NullLogger<EmbeddingWorker>.Instance);
        try
        {
            if (disposed)
            {
                worker.Dispose();
            }
            else
            {
                await worker.StopAsync(CancellationToken.None);
            }

            // Refused as it is asked for: a request that started the worker's thread would load the model first.
            var refused = Assert.Throws<GenerationException>(() => { _ = worker.EmbedAsync(Inputs); });
            Assert.Equal(GenerationErrorCode.Unavailable, refused.Code);
            Assert.Equal("The server is shutting down.", refused.Message);
        }
        finally
        {
            worker.Dispose();
        }
    }
}
