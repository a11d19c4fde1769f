using System.Text;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Sampling;
using LlmServer.Engine.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace LlmServer.Engine.Tests.Scheduling;

/// <summary>
/// A scripted backend for the scheduler's logic: one character per token (token id = char code), token 0 is end of
/// generation, and the "model" continues any token t with <see cref="Next"/>(t). It checks that every slot's
/// positions stay contiguous, and records every batch. Each decode advances <see cref="Clock"/> by the scripted
/// <see cref="StepTime"/> of its batch, so the scheduler's step timings are exact and need no real clock.
/// </summary>
internal sealed class FakeBackend(int slots, int slotContext) : IInferenceBackend
{
    private const int StateMarker = 0x4b564653;

    private readonly List<BatchEntry> _batch = [];
    private readonly List<int>[] _kv = Enumerable.Range(0, slots).Select(_ => new List<int>()).ToArray();
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int SlotCount { get; } = slots;

    public int SlotContextSize
    {
        get
        {
            SlotContextSizeRead?.Invoke();
            return slotContext;
        }
    }

    /// <summary>Called at every read of <see cref="SlotContextSize"/>, which the scheduler makes as it publishes its status (and as it admits and generates).</summary>
    public Action? SlotContextSizeRead { get; set; }

    public ITokenVocabulary Vocabulary { get; } = new CharVocabulary();

    public List<IReadOnlyList<BatchEntry>> Batches { get; } = [];

    public Queue<DecodeOutcome> ForcedOutcomes { get; } = new();

    public FakeTimeProvider Clock { get; } = new();

    /// <summary>How long decoding a batch takes on <see cref="Clock"/>; by default 1 ms, so steps happen in order in time.</summary>
    public Func<IReadOnlyList<BatchEntry>, TimeSpan> StepTime { get; set; } = _ => TimeSpan.FromMilliseconds(1);

    public List<(int Source, int Target)> Copies { get; } = [];

    /// <summary>The continuation rule: by default the next letter of the alphabet, wrapping z to a.</summary>
    public Func<int, int> Next { get; set; } = token => token is >= 'a' and < 'z' ? token + 1 : 'a';

    /// <summary>Called as a request's sampler is created, on the thread that submits it (after the scheduler let it in, before it is queued).</summary>
    public Action? CreatingSampler { get; set; }

    /// <summary>Completes when the backend is disposed: a sampler created after that throws, where a freed model would crash.</summary>
    public Task Disposed => _disposed.Task;

    /// <summary>Thrown by samplers when set (to test one request failing).</summary>
    public Exception? SamplerFailure { get; set; }

    /// <summary>Thrown by <see cref="Dispose"/> when set (after <see cref="Disposed"/> completes), as a failing native free would.</summary>
    public Exception? DisposeFailure { get; set; }

    public IReadOnlyList<int> KvOf(int slot) => _kv[slot];

    public void BeginBatch(bool forPrompt) => _batch.Clear();

    public int AddToBatch(int token, int position, int slot, bool wantLogits)
    {
        _batch.Add(new BatchEntry(token, position, slot, wantLogits));
        return _batch.Count - 1;
    }

    public DecodeOutcome Decode()
    {
        var batch = _batch.ToArray();
        Batches.Add(batch);
        Clock.Advance(StepTime(batch));
        if (ForcedOutcomes.TryDequeue(out var forced) && forced != DecodeOutcome.Ok)
        {
            return forced;
        }

        foreach (var entry in _batch)
        {
            Assert.Equal(_kv[entry.Slot].Count, entry.Position);
            Assert.True(entry.Position < SlotContextSize, "position beyond the slot's context");
            _kv[entry.Slot].Add(entry.Token);
        }

        return DecodeOutcome.Ok;
    }

    public void TruncateSlot(int slot, int fromPosition)
    {
        var from = Math.Max(0, fromPosition);
        if (from < _kv[slot].Count)
        {
            _kv[slot].RemoveRange(from, _kv[slot].Count - from);
        }
    }

    public void CopySlot(int sourceSlot, int targetSlot)
    {
        Copies.Add((sourceSlot, targetSlot));
        _kv[targetSlot].Clear();
        _kv[targetSlot].AddRange(_kv[sourceSlot]);
    }

    /// <summary>What <see cref="CanShift"/> answers (a model whose memory cannot move when false).</summary>
    public bool CanShift { get; set; } = true;

    public List<(int Slot, int From, int To)> Shifts { get; } = [];

    public int Saves { get; private set; }

    public void RemoveAndShift(int slot, int fromPosition, int toPosition)
    {
        Assert.True(CanShift, "shifted a model that cannot shift");
        Assert.InRange(fromPosition, 0, toPosition);
        Assert.InRange(toPosition, fromPosition, _kv[slot].Count);
        Shifts.Add((slot, fromPosition, toPosition));
        _kv[slot].RemoveRange(fromPosition, toPosition - fromPosition);
    }

    /// <summary>The fake's state is its tokens, one int each, behind a marker.</summary>
    public byte[] SaveSlot(int slot)
    {
        Saves++;
        var state = new byte[4 + (_kv[slot].Count * 4)];
        BitConverter.TryWriteBytes(state, StateMarker);
        for (var i = 0; i < _kv[slot].Count; i++)
        {
            BitConverter.TryWriteBytes(state.AsSpan(4 + (i * 4)), _kv[slot][i]);
        }

        return state;
    }

    public bool RestoreSlot(int slot, ReadOnlySpan<byte> state)
    {
        _kv[slot].Clear();
        if (state.Length < 4 || state.Length % 4 != 0 || BitConverter.ToInt32(state) != StateMarker)
        {
            return false;
        }

        for (var i = 4; i < state.Length; i += 4)
        {
            _kv[slot].Add(BitConverter.ToInt32(state[i..]));
        }

        return true;
    }

    public ReadOnlySpan<float> GetLogits(int batchIndex)
    {
        var logits = new float[128];
        logits[Next(_batch[batchIndex].Token)] = 10f;
        return logits;
    }

    public ITokenSampler CreateSampler(SamplingOptions options, string? grammar, LazyTriggers triggers, bool ignoreEos)
    {
        if (grammar == "invalid")
        {
            throw new InvalidOperationException("bad grammar");
        }

        CreatingSampler?.Invoke();
        ObjectDisposedException.ThrowIf(Disposed.IsCompleted, this);
        return new FakeSampler(this);
    }

    public void Dispose()
    {
        _disposed.TrySetResult();
        if (DisposeFailure is { } failure)
        {
            throw failure;
        }
    }

    internal readonly record struct BatchEntry(int Token, int Position, int Slot, bool Logits);

    private sealed class FakeSampler(FakeBackend backend) : ITokenSampler
    {
        public int Sample(IInferenceBackend ignored, int batchIndex) =>
            backend.SamplerFailure is { } failure ? throw failure : backend.Next(backend._batch[batchIndex].Token);

        public void Dispose()
        {
        }
    }

    /// <summary>
    /// One token a character, but for control tokens (Mistral's [TOOL_CALLS] and [ARGS], and think tags): they render
    /// as nothing, or as their text when asked to, and a text that parses special tokens spells them.
    /// </summary>
    internal sealed class CharVocabulary : ITokenVocabulary
    {
        public const int ToolCalls = 1;
        public const int Args = 2;
        public const int Think = 3;
        public const int EndThink = 4;

        private static readonly string[] ControlTexts = [string.Empty, "[TOOL_CALLS]", "[ARGS]", "<think>", "</think>"];

        public int Count => 128;

        public bool AddBos => false;

        public TokenCountBound Bound { get; } = TokenCountBound.WithLongestToken(ControlTexts.Max(t => t.Length));

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial)
        {
            var tokens = new List<int>(text.Length);
            for (var i = 0; i < text.Length; i++)
            {
                var control = parseSpecial ? Array.FindIndex(ControlTexts, c => c.Length > 0 && text.AsSpan(i).StartsWith(c, StringComparison.Ordinal)) : -1;
                tokens.Add(control > 0 ? control : text[i]);
                i += control > 0 ? ControlTexts[control].Length - 1 : 0;
            }

            return [.. tokens];
        }

        public int[] TokenizeContinuation(string text, bool parseSpecial) => Tokenize(text, false, parseSpecial);

        public int TokenToBytes(int token, Span<byte> destination, bool special) => token > 0 && token < ControlTexts.Length
            ? (special ? Encoding.UTF8.GetBytes(ControlTexts[token], destination) : 0)
            : Encoding.UTF8.GetBytes(((char)token).ToString(), destination);

        public bool IsEndOfGeneration(int token) => token == 0;
    }
}
