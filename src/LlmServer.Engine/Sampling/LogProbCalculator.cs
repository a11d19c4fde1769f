using System.Collections.Frozen;
using System.Numerics.Tensors;
using System.Text;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Sampling;

/// <summary>Log-probabilities from the model's raw logits (before sampling settings), as OpenAI reports them.</summary>
internal static class LogProbCalculator
{
    /// <summary>The token's log-probability and the <paramref name="top"/> likeliest, each token's text as the output renders it.</summary>
    public static TokenLogProb Compute(IInferenceBackend backend, int batchIndex, int token, int top, FrozenSet<int> preserved)
    {
        var logits = backend.GetLogits(batchIndex);
        var max = TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (var logit in logits)
        {
            sum += Math.Exp(logit - max);
        }

        var logNormalizer = max + (float)Math.Log(sum);
        var alternatives = new List<TopLogProb>(top);
        if (top > 0)
        {
            foreach (var candidate in TopIndices(logits, top))
            {
                var bytes = backend.Vocabulary.Utf8Of([candidate], preserved);
                alternatives.Add(new TopLogProb(candidate, Encoding.UTF8.GetString(bytes), bytes, logits[candidate] - logNormalizer));
            }
        }

        var tokenBytes = backend.Vocabulary.Utf8Of([token], preserved);
        return new TokenLogProb(token, Encoding.UTF8.GetString(tokenBytes), tokenBytes, logits[token] - logNormalizer, alternatives);
    }

    private static int[] TopIndices(ReadOnlySpan<float> logits, int count)
    {
        count = Math.Min(count, logits.Length);
        var best = new int[count];
        var filled = 0;
        for (var i = 0; i < logits.Length; i++)
        {
            if (filled < count)
            {
                best[filled++] = i;
                for (var j = filled - 1; j > 0 && logits[best[j]] > logits[best[j - 1]]; j--)
                {
                    (best[j], best[j - 1]) = (best[j - 1], best[j]);
                }
            }
            else if (logits[i] > logits[best[count - 1]])
            {
                best[count - 1] = i;
                for (var j = count - 1; j > 0 && logits[best[j]] > logits[best[j - 1]]; j--)
                {
                    (best[j], best[j - 1]) = (best[j - 1], best[j]);
                }
            }
        }

        return best;
    }
}
