using LlmServer.Engine.Hosting;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Tests.Infrastructure;

/// <summary>Counts the real model's tokenizations (the engine's vocabulary, decorated): a seam, not a clock.</summary>
internal sealed class TokenizerCalls
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    /// <summary>Decorates the engine's backend (pass to the test server's configureServices).</summary>
    public void Install(IServiceCollection services) => services.AddSingleton(new BackendDecorator(inner => new CountingBackend(inner, this)));

    private sealed class CountingVocabulary(ITokenVocabulary inner, TokenizerCalls calls) : ITokenVocabulary
    {
        public int Count => inner.Count;

        public bool AddBos => inner.AddBos;

        public TokenCountBound Bound => inner.Bound;

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
        {
            Interlocked.Increment(ref calls._count);
            return inner.Tokenize(text, addSpecial, parseSpecial);
        }

        public int[] TokenizeContinuation(string text, bool parseSpecial)
        {
            Interlocked.Increment(ref calls._count);
            return inner.TokenizeContinuation(text, parseSpecial);
        }

        public int TokenToBytes(int token, Span<byte> destination, bool special) => inner.TokenToBytes(token, destination, special);

        public bool IsEndOfGeneration(int token) => inner.IsEndOfGeneration(token);
    }

    private sealed class CountingBackend(IInferenceBackend inner, TokenizerCalls calls) : ForwardingBackend(inner)
    {
        public override ITokenVocabulary Vocabulary { get; } = new CountingVocabulary(inner.Vocabulary, calls);
    }
}
