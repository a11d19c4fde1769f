using Microsoft.Extensions.Logging;

namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Decodes a <see cref="StepPlan"/> as one batch. The batch lists sequences in ascending slot order: with a KV cache
/// split per sequence, llama.cpp splits a batch whose sequence ids are out of order into several micro-batches,
/// which costs up to 2x a step.
/// </summary>
internal sealed partial class StepDecoder(IInferenceBackend backend, ILogger logger)
{
    private readonly int[] _chunkBySlot = new int[backend.SlotCount];

    /// <summary>Builds the batch (recording each sampled entry's batch index on its choice) and decodes it.</summary>
    public DecodeOutcome Decode(StepPlan plan)
    {
        backend.BeginBatch(forPrompt: plan.Chunks.Count > 0);
        Array.Fill(_chunkBySlot, -1);
        for (var i = 0; i < plan.Chunks.Count; i++)
        {
            _chunkBySlot[plan.Chunks[i].Slot] = i;
        }

        var next = 0;
        for (var slot = 0; slot < _chunkBySlot.Length; slot++)
        {
            if (next < plan.Tokens.Count && plan.Tokens[next].Choice.Slot == slot)
            {
                var choice = plan.Tokens[next++].Choice;
                choice.BatchIndex = backend.AddToBatch(choice.PendingToken, choice.Position, slot, wantLogits: true);
            }
            else if (_chunkBySlot[slot] >= 0)
            {
                AddChunk(plan.Chunks[_chunkBySlot[slot]]);
            }
        }

        try
        {
            return backend.Decode();
        }
        catch (Exception ex)
        {
            LogDecodeFailed(logger, ex);
            return DecodeOutcome.Failed;
        }
    }

    private void AddChunk(PromptChunk chunk)
    {
        var request = chunk.Request;
        for (var position = chunk.Start; position < chunk.Start + chunk.Count; position++)
        {
            var wantLogits = chunk.CompletesPrompt && position == chunk.Start + chunk.Count - 1;
            var index = backend.AddToBatch(request.PromptTokens[position], position, chunk.Slot, wantLogits);
            if (wantLogits)
            {
                foreach (var choice in request.Choices)
                {
                    choice.BatchIndex = index;
                }
            }
        }
    }

    [LoggerMessage(EventId = 1103, Level = LogLevel.Error, Message = "Decode threw")]
    private static partial void LogDecodeFailed(ILogger logger, Exception exception);
}
