using System.Runtime.InteropServices;
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

    public NativeChainSampler(SafeLLamaContextHandle context, SafeLlamaModelHandle model, SamplingOptions options, string? grammar, LazyTriggers triggers, int[] excludedTokens)
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

            if (grammar is not null && !triggers.IsEmpty)
            {
                // Lazy: free text until the output matches a trigger, then the grammar (a tool call under tool_choice auto).
                LazyGrammar.Add(_chain, model, grammar, triggers);
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
            _chain.AddDistributionSampler(options.Seed is { } seed ? SamplingOptions.NativeSeed(seed) : (uint)Random.Shared.Next());
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

/// <summary>
/// What wakes a lazy grammar: whole-text patterns (see <see cref="Tools.ToolGrammar.WholeText"/>), which llama.cpp
/// matches against all the text generated so far at every token, and tokens, which it checks in O(1) a token and
/// whose text it feeds the grammar as the call's start.
/// </summary>
internal sealed record LazyTriggers(IReadOnlyList<string> Patterns, IReadOnlyList<int> Tokens)
{
    public bool IsEmpty => Patterns.Count == 0 && Tokens.Count == 0;
}

/// <summary>
/// llama.cpp's lazy grammar sampler, called directly: LLamaSharp 0.30.0's
/// <see cref="SafeLLamaSamplerChainHandle.AddLazyGrammar"/> declares <c>llama_sampler_init_grammar_lazy_patterns</c>
/// without its pattern count, so the arguments shift and llama.cpp asserts (the process aborts). The function is
/// resolved from the very library LLamaSharp loaded, and the sampler handed to the chain, which owns it from then on.
/// </summary>
internal static class LazyGrammar
{
    private static readonly Lazy<(InitLazyGrammar Init, ChainAdd Add, GetVocab Vocab)> Native = new(Resolve);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate IntPtr InitLazyGrammar(
        IntPtr vocab,
        [MarshalAs(UnmanagedType.LPUTF8Str)] string grammar,
        [MarshalAs(UnmanagedType.LPUTF8Str)] string root,
        IntPtr[] patterns,
        nuint patternCount,
        int[] tokens,
        nuint tokenCount);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate void ChainAdd(IntPtr chain, IntPtr sampler);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate IntPtr GetVocab(IntPtr model);

    public static void Add(SafeLLamaSamplerChainHandle chain, SafeLlamaModelHandle model, string grammar, LazyTriggers triggers)
    {
        var native = Native.Value;
        var patterns = triggers.Patterns;
        var tokens = triggers.Tokens.ToArray();
        var utf8 = new IntPtr[patterns.Count];
        IntPtr sampler;
        try
        {
            for (var i = 0; i < utf8.Length; i++)
            {
                utf8[i] = Marshal.StringToCoTaskMemUTF8(patterns[i]);
            }

            sampler = native.Init(native.Vocab(model.DangerousGetHandle()), grammar, "root", utf8, (nuint)utf8.Length, tokens, (nuint)tokens.Length);
        }
        finally
        {
            foreach (var pattern in utf8)
            {
                Marshal.FreeCoTaskMem(pattern);
            }
        }

        if (sampler == IntPtr.Zero)
        {
            throw new InvalidOperationException("llama.cpp refused the lazy grammar or its trigger patterns.");
        }

        native.Add(chain.DangerousGetHandle(), sampler);
    }

    private static (InitLazyGrammar, ChainAdd, GetVocab) Resolve()
    {
        // LLamaSharp registered a resolver for its own assembly: this finds the library it loaded.
        var library = NativeLibrary.Load("llama", typeof(NativeApi).Assembly, null);
        return (
            Marshal.GetDelegateForFunctionPointer<InitLazyGrammar>(NativeLibrary.GetExport(library, "llama_sampler_init_grammar_lazy_patterns")),
            Marshal.GetDelegateForFunctionPointer<ChainAdd>(NativeLibrary.GetExport(library, "llama_sampler_chain_add")),
            Marshal.GetDelegateForFunctionPointer<GetVocab>(NativeLibrary.GetExport(library, "llama_model_get_vocab")));
    }
}
