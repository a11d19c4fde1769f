using LLama.Native;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Sampling;

/// <summary>Argmax over the logits span: no native call, no copy (about 3 µs over a 32k vocabulary).</summary>
internal sealed class GreedySampler(int[] excludedTokens) : ITokenSampler
{
    public int Sample(IInferenceBackend backend, int batchIndex)
    {
        var logits = backend.GetLogits(batchIndex);
        var best = ArgMax(logits, excludedTokens);
        return best;
    }

    public void Dispose()
    {
    }

    internal static int ArgMax(ReadOnlySpan<float> logits, int[] excluded)
    {
        var best = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
        if (excluded.Length == 0 || Array.IndexOf(excluded, best) < 0)
        {
            return best;
        }

        // Rare: the best token is an excluded end-of-generation token (ignore_eos); scan again without it.
        var bestValue = float.NegativeInfinity;
        best = 0;
        for (var i = 0; i < logits.Length; i++)
        {
            if (logits[i] > bestValue && Array.IndexOf(excluded, i) < 0)
            {
                bestValue = logits[i];
                best = i;
            }
        }

        return best;
    }
}

/// <summary>
/// llama.cpp's native sampler chain, built from the request's settings: end-of-generation bias (ignore_eos),
/// grammar, penalties, then top-k before the distribution (top-k first keeps the distribution small), or greedy.
/// The chain accepts each sampled token itself.
/// </summary>
internal sealed class NativeChainSampler : ITokenSampler
{
    private readonly SafeLLamaSamplerChainHandle _chain;
    private readonly SafeLLamaContextHandle _context;

    public NativeChainSampler(SafeLLamaContextHandle context, SafeLlamaModelHandle model, SamplingOptions options, string? grammar, IReadOnlyList<string> grammarTriggers, int[] excludedTokens)
    {
        _context = context;
        _chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        try
        {
            var biases = Biases(options.LogitBias, excludedTokens);
            if (biases.Length > 0)
            {
                _chain.AddLogitBias(model.Vocab.Count, biases);
            }

            if (grammar is not null && grammarTriggers.Count > 0)
            {
                // Lazy: free text until the output matches a trigger, then the grammar (a tool call under tool_choice auto).
                _chain.AddLazyGrammar(model, grammar, "root", [.. grammarTriggers], []);
            }
            else if (grammar is not null)
            {
                _chain.AddGrammar(model.Vocab, grammar, "root");
            }

            if (options.HasPenalties)
            {
                _chain.AddPenalties(options.PenaltyLastN, options.RepeatPenalty, options.FrequencyPenalty, options.PresencePenalty);
            }

            if (options.IsGreedy)
            {
                _chain.AddGreedySampler();
                return;
            }

            if (options.TopK > 0)
            {
                _chain.AddTopK(options.TopK);
            }

            if (options.TopP < 1f)
            {
                _chain.AddTopP(options.TopP, 1);
            }

            if (options.MinP > 0f)
            {
                _chain.AddMinP(options.MinP, 1);
            }

            _chain.AddTemperature(options.Temperature);
            _chain.AddDistributionSampler(options.Seed ?? (uint)Random.Shared.Next());
        }
        catch
        {
            _chain.Dispose();
            throw;
        }
    }

    public int Sample(IInferenceBackend backend, int batchIndex) => (int)_chain.Sample(_context, batchIndex);

    public void Dispose() => _chain.Dispose();

    /// <summary>The request's logit biases, then end-of-generation tokens excluded (ignore_eos), which win.</summary>
    private static LLamaLogitBias[] Biases(IReadOnlyDictionary<int, float>? logitBias, int[] excludedTokens)
    {
        var biases = new List<LLamaLogitBias>((logitBias?.Count ?? 0) + excludedTokens.Length);
        if (logitBias is not null)
        {
            foreach (var (token, bias) in logitBias)
            {
                if (Array.IndexOf(excludedTokens, token) < 0)
                {
                    biases.Add(new LLamaLogitBias { Token = token, Bias = bias });
                }
            }
        }

        foreach (var token in excludedTokens)
        {
            biases.Add(new LLamaLogitBias { Token = token, Bias = float.NegativeInfinity });
        }

        return [.. biases];
    }
}
