using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;
using LlmServer.Testing;

namespace LlmServer.Engine.Tests.Grammars;

/// <summary>
/// Asks the llama.cpp that LLamaSharp loaded whether it takes a grammar, through its C API: unlike
/// <see cref="SafeLLamaSamplerChainHandle.AddGrammar(SafeLlamaModelHandle.Vocabulary, string, string)"/>, a refusal comes
/// back as NULL instead of crashing the process. Grammars that make llama.cpp crash or hang must never come here.
/// </summary>
internal sealed class LlamaCppGrammar : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly IntPtr _vocab;
    private readonly InitGrammar _init;
    private readonly FreeSampler _free;

    public LlamaCppGrammar()
    {
        _weights = LLamaWeights.LoadFromFile(new ModelParams(TestModels.Stories260K) { VocabOnly = true });
        // LLamaSharp registered a resolver for its own assembly: this finds the very library it loaded.
        var library = NativeLibrary.Load("llama", typeof(NativeApi).Assembly, null);
        var getVocab = Marshal.GetDelegateForFunctionPointer<GetVocab>(NativeLibrary.GetExport(library, "llama_model_get_vocab"));
        _vocab = getVocab(_weights.NativeHandle.DangerousGetHandle());
        _init = Marshal.GetDelegateForFunctionPointer<InitGrammar>(NativeLibrary.GetExport(library, "llama_sampler_init_grammar"));
        _free = Marshal.GetDelegateForFunctionPointer<FreeSampler>(NativeLibrary.GetExport(library, "llama_sampler_free"));
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate IntPtr GetVocab(IntPtr model);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate IntPtr InitGrammar(IntPtr vocab, [MarshalAs(UnmanagedType.LPUTF8Str)] string grammar, [MarshalAs(UnmanagedType.LPUTF8Str)] string root);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate void FreeSampler(IntPtr sampler);

    public bool Accepts(string grammar)
    {
        var sampler = _init(_vocab, grammar, "root");
        if (sampler == IntPtr.Zero)
        {
            return false;
        }

        _free(sampler);
        return true;
    }

    public void Dispose() => _weights.Dispose();
}
