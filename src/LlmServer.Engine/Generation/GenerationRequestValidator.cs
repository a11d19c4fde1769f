namespace LlmServer.Engine.Generation;

/// <summary>
/// Checks a request against <see cref="GenerationLimits"/> before any work is done; the exception names the field at
/// fault in the engine's terms (<see cref="GenerationField"/>), and its message does not: each front end puts its own
/// name of the field in front (<c>top_p: must be between 0 and 1.</c>). Front ends check their own fields first;
/// this is the last word for every caller (in-process clients included).
/// </summary>
internal static class GenerationRequestValidator
{
    public static void Validate(GenerationRequest request)
    {
        if ((request.Prompt is null) == (request.Messages is null))
        {
            Fail("Give either a prompt or messages.", GenerationField.Prompt);
        }

        if (request.Messages is { Count: 0 })
        {
            Fail("must hold at least one message.", GenerationField.Messages);
        }

        if (request.ContinueFinalMessage && request.Messages is not [.., { Role: "assistant", ToolCalls: null or { Count: 0 } }])
        {
            Fail("Only a final assistant message without tool calls can be continued.", GenerationField.Messages);
        }

        Check(request.Choices, GenerationLimits.Choices, GenerationField.Choices);
        if (request.MaxTokens is { } maxTokens)
        {
            Check(maxTokens, GenerationLimits.MaxTokens, GenerationField.MaxTokens);
        }

        Check(request.TopLogProbs, GenerationLimits.TopLogProbs, GenerationField.TopLogProbs);
        if (request.Stop.Count > GenerationLimits.MaxStopSequences || request.Stop.Any(string.IsNullOrEmpty))
        {
            Fail($"takes at most {GenerationLimits.MaxStopSequences} non-empty sequences.", GenerationField.Stop);
        }

        var sampling = request.Sampling;
        Check(sampling.Temperature, GenerationLimits.Temperature, GenerationField.Temperature);
        Check(sampling.TopP, GenerationLimits.TopP, GenerationField.TopP);
        Check(sampling.TopK, GenerationLimits.TopK, GenerationField.TopK);
        Check(sampling.MinP, GenerationLimits.MinP, GenerationField.MinP);
        Check(sampling.FrequencyPenalty, GenerationLimits.Penalty, GenerationField.FrequencyPenalty);
        Check(sampling.PresencePenalty, GenerationLimits.Penalty, GenerationField.PresencePenalty);
        Check(sampling.RepeatPenalty, GenerationLimits.RepeatPenalty, GenerationField.RepeatPenalty);
        Check(sampling.PenaltyLastN, GenerationLimits.PenaltyLastN, GenerationField.PenaltyLastN);
        if (sampling.LogitBias is { } biases)
        {
            foreach (var (token, bias) in biases)
            {
                if (token < 0 || !GenerationLimits.LogitBias.Contains(bias))
                {
                    Fail($"maps token ids (0 or more) to biases {GenerationLimits.LogitBias.Describe()}; {token}: {bias} is not one.", GenerationField.LogitBias);
                }
            }
        }

        Tools.ToolCalling.Validate(request);
    }

    private static void Check(double value, ValueRange range, GenerationField field)
    {
        if (!range.Contains(value))
        {
            Fail($"must be {range.Describe()}.", field);
        }
    }

    private static void Fail(string message, GenerationField field) =>
        throw new GenerationException(GenerationErrorCode.InvalidRequest, message, field);
}
