namespace LlmServer.Engine.Generation;

/// <summary>Checks a request's ranges before any work is done; the message names the field at fault.</summary>
internal static class GenerationRequestValidator
{
    public const int MaxChoices = 4;
    public const int MaxTopLogProbs = 20;
    public const int MaxStopSequences = 16;

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

        if (request.Choices is < 1 or > MaxChoices)
        {
            Fail($"n must be between 1 and {MaxChoices}.", "n");
        }

        if (request.MaxTokens is { } maxTokens && !GenerationLimits.MaxTokens.Contains(maxTokens))
        {
            Fail($"max_tokens must be {GenerationLimits.MaxTokens.Describe()}.", "max_tokens");
        }

        if (request.TopLogProbs is < 0 or > MaxTopLogProbs)
        {
            Fail($"top_logprobs must be between 0 and {MaxTopLogProbs}.", "top_logprobs");
        }

        if (request.Stop.Count > MaxStopSequences || request.Stop.Any(string.IsNullOrEmpty))
        {
            Fail($"stop takes at most {MaxStopSequences} non-empty sequences.", "stop");
        }

        var sampling = request.Sampling;
        if (!GenerationLimits.Temperature.Contains(sampling.Temperature))
        {
            Fail($"temperature must be {GenerationLimits.Temperature.Describe()}.", "temperature");
        }

        if (!GenerationLimits.TopP.Contains(sampling.TopP))
        {
            Fail($"top_p must be {GenerationLimits.TopP.Describe()}.", "top_p");
        }

        if (sampling.TopK < 0)
        {
            Fail("top_k must be 0 (off) or more.", "top_k");
        }

        if (!float.IsFinite(sampling.MinP) || sampling.MinP is < 0 or > 1)
        {
            Fail("min_p must be between 0 and 1.", "min_p");
        }

        if (!float.IsFinite(sampling.FrequencyPenalty) || sampling.FrequencyPenalty is < -2 or > 2)
        {
            Fail("frequency_penalty must be between -2 and 2.", "frequency_penalty");
        }

        if (!float.IsFinite(sampling.PresencePenalty) || sampling.PresencePenalty is < -2 or > 2)
        {
            Fail("presence_penalty must be between -2 and 2.", "presence_penalty");
        }

        if (!float.IsFinite(sampling.RepeatPenalty) || sampling.RepeatPenalty is <= 0 or > 10)
        {
            Fail("repeat_penalty must be greater than 0 and at most 10.", "repeat_penalty");
        }

        if (sampling.PenaltyLastN < 0)
        {
            Fail("penalty_last_n must be 0 or more.", "penalty_last_n");
        }

        if (sampling.LogitBias is { } biases)
        {
            foreach (var (token, bias) in biases)
            {
                if (token < 0 || !float.IsFinite(bias) || bias is < -100 or > 100)
                {
                    Fail($"logit_bias maps token ids (0 or more) to biases between -100 and 100; {token}: {bias} is not one.", "logit_bias");
                }
            }
        }

        Tools.ToolCalling.Validate(request);
    }

    private static void Fail(string message, string parameter) =>
        throw new GenerationException(GenerationErrorCode.InvalidRequest, message, parameter);
}
