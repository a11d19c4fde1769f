namespace LlmServer.Engine.Generation;

/// <summary>
/// Checks a request against <see cref="GenerationLimits"/> before any work is done; the message names the field at
/// fault. Front ends check their own fields first and name them in their own terms; this is the last word for
/// every caller (in-process clients included).
/// </summary>
internal static class GenerationRequestValidator
{
    public static void Validate(GenerationRequest request)
    {
        if ((request.Prompt is null) == (request.Messages is null))
        {
            Fail("Give either a prompt or messages.", "prompt");
        }

        if (request.Messages is { Count: 0 })
        {
            Fail("messages must hold at least one message.", "messages");
        }

        if (request.ContinueFinalMessage && request.Messages is not [.., { Role: "assistant", ToolCalls: null or { Count: 0 } }])
        {
            Fail("Only a final assistant message without tool calls can be continued.", "messages");
        }

        Check(request.Choices, GenerationLimits.Choices, "n");
        if (request.MaxTokens is { } maxTokens)
        {
            Check(maxTokens, GenerationLimits.MaxTokens, "max_tokens");
        }

        Check(request.TopLogProbs, GenerationLimits.TopLogProbs, "top_logprobs");
        if (request.Stop.Count > GenerationLimits.MaxStopSequences || request.Stop.Any(string.IsNullOrEmpty))
        {
            Fail($"stop takes at most {GenerationLimits.MaxStopSequences} non-empty sequences.", "stop");
        }

        var sampling = request.Sampling;
        Check(sampling.Temperature, GenerationLimits.Temperature, "temperature");
        Check(sampling.TopP, GenerationLimits.TopP, "top_p");
        Check(sampling.TopK, GenerationLimits.TopK, "top_k");
        Check(sampling.MinP, GenerationLimits.MinP, "min_p");
        Check(sampling.FrequencyPenalty, GenerationLimits.Penalty, "frequency_penalty");
        Check(sampling.PresencePenalty, GenerationLimits.Penalty, "presence_penalty");
        Check(sampling.RepeatPenalty, GenerationLimits.RepeatPenalty, "repeat_penalty");
        Check(sampling.PenaltyLastN, GenerationLimits.PenaltyLastN, "penalty_last_n");
        if (sampling.LogitBias is { } biases)
        {
            foreach (var (token, bias) in biases)
            {
                if (token < 0 || !GenerationLimits.LogitBias.Contains(bias))
                {
                    Fail($"logit_bias maps token ids (0 or more) to biases {GenerationLimits.LogitBias.Describe()}; {token}: {bias} is not one.", "logit_bias");
                }
            }
        }

        Tools.ToolCalling.Validate(request);
    }

    private static void Check(double value, ValueRange range, string parameter)
    {
        if (!range.Contains(value))
        {
            Fail($"{parameter} must be {range.Describe()}.", parameter);
        }
    }

    private static void Fail(string message, string parameter) =>
        throw new GenerationException(GenerationErrorCode.InvalidRequest, message, parameter);
}
