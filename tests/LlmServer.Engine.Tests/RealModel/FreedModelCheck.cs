using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Sampling;
using LlmServer.Engine.Scheduling;
using LlmServer.Tests.Infrastructure;

namespace LlmServer.Engine.Tests.RealModel;

/// <summary>
/// Decorates a real engine's backend so that a use of its model after the backend was freed throws
/// <see cref="ObjectDisposedException"/> (where the freed native model would crash the process or read garbage), and
/// so that a test can act at the moment a caller is about to use the vocabulary (<see cref="UsingVocabulary"/>).
/// </summary>
internal sealed class FreedModelCheck
{
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Action? _usingVocabulary;

    /// <summary>Pass to the engine (see <see cref="RealEngine.Create"/>).</summary>
    public BackendDecorator Decorator => new(inner => new CheckedBackend(inner, this));

    /// <summary>Completes as the backend is disposed, before the real one is freed.</summary>
    public Task Disposed => _disposed.Task;

    /// <summary>Runs once, on the caller's thread, at the next use of the vocabulary (tokenizing or reading a token's bytes).</summary>
    public Action? UsingVocabulary
    {
        set => Volatile.Write(ref _usingVocabulary, value);
    }

    private void Use()
    {
        Interlocked.Exchange(ref _usingVocabulary, null)?.Invoke();
        ThrowIfFreed();
    }

    private void ThrowIfFreed() => ObjectDisposedException.ThrowIf(Disposed.IsCompleted, this);

    private sealed class CheckedBackend(IInferenceBackend inner, FreedModelCheck check) : ForwardingBackend(inner)
    {
        public override ITokenVocabulary Vocabulary { get; } = new CheckedVocabulary(inner.Vocabulary, check);

        public override ITokenSampler CreateSampler(SamplingOptions options, string? grammar, LazyTriggers triggers, bool ignoreEos)
        {
            check.ThrowIfFreed();
            return base.CreateSampler(options, grammar, triggers, ignoreEos);
        }

        public override void Dispose()
        {
            // Marked first: a use that checks while the real model is being freed must not reach it.
            check._disposed.TrySetResult();
            base.Dispose();
        }
    }

    private sealed class CheckedVocabulary(ITokenVocabulary inner, FreedModelCheck check) : ITokenVocabulary
    {
        public int Count => inner.Count;

        public bool AddBos => inner.AddBos;

        public TokenCountBound Bound => inner.Bound;

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
        {
            check.Use();
            return inner.Tokenize(text, addSpecial, parseSpecial);
        }

        public int[] TokenizeContinuation(string text, bool parseSpecial)
        {
            check.Use();
            return inner.TokenizeContinuation(text, parseSpecial);
        }

        public int TokenToBytes(int token, Span<byte> destination, bool special)
        {
            check.Use();
            return inner.TokenToBytes(token, destination, special);
        }

        public bool IsEndOfGeneration(int token) => inner.IsEndOfGeneration(token);
    }
}
