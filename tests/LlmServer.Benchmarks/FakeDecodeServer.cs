using System.Globalization;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Hosting;
using LlmServer.Engine.Sampling;
using LlmServer.Engine.Scheduling;
using LlmServer.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace LlmServer.Benchmarks;

/// <summary>
/// <c>--serve-fake MODEL DECODE_MS PORT</c>: the real server (HTTP, scheduler, the model's tokenizer and template)
/// over a backend whose decode sleeps a constant time and whose logits always pick the same token. Decode then costs
/// no CPU, so the process's CPU time over a load run is the serving cost alone (see fake-decode-cpu.sh).
/// </summary>
internal static class FakeDecodeServer
{
    public static async Task<int> RunAsync(string[] args)
    {
        var decode = TimeSpan.FromMilliseconds(double.Parse(args[1], CultureInfo.InvariantCulture));
        var app = ServerApplication.Build(
            [
                "--model", args[0], "--urls", $"http://127.0.0.1:{args[2]}",
                "--Scheduler:Slots=8", "--Scheduler:ContextSize=4096", "--Scheduler:StepTokenBudget=1024",
                "--Model:Threads=1", "--Model:BatchThreads=1", "--Logging:LogLevel:Default=Warning",
            ],
            services => services.AddSingleton(new BackendDecorator(inner => new ConstantTimeBackend(inner, decode))));

        await app.RunAsync();
        return 0;
    }

    private sealed class ConstantTimeBackend(IInferenceBackend inner, TimeSpan decode) : IInferenceBackend
    {
        private float[]? _logits;

        public int SlotCount => inner.SlotCount;

        public int SlotContextSize => inner.SlotContextSize;

        public ITokenVocabulary Vocabulary => inner.Vocabulary;

        public void BeginBatch(bool forPrompt) => inner.BeginBatch(forPrompt);

        public int AddToBatch(int token, int position, int slot, bool wantLogits) => inner.AddToBatch(token, position, slot, wantLogits);

        public DecodeOutcome Decode()
        {
            Thread.Sleep(decode);
            return DecodeOutcome.Ok;
        }

        public void TruncateSlot(int slot, int fromPosition) => inner.TruncateSlot(slot, fromPosition);

        public void CopySlot(int sourceSlot, int targetSlot) => inner.CopySlot(sourceSlot, targetSlot);

        public bool CanShift => inner.CanShift;

        public void RemoveAndShift(int slot, int fromPosition, int toPosition) => inner.RemoveAndShift(slot, fromPosition, toPosition);

        public byte[] SaveSlot(int slot) => inner.SaveSlot(slot);

        public bool RestoreSlot(int slot, ReadOnlySpan<byte> state) => inner.RestoreSlot(slot, state);

        /// <summary>Always the token of " the": whole characters, never the end of generation.</summary>
        public ReadOnlySpan<float> GetLogits(int batchIndex)
        {
            if (_logits is null)
            {
                _logits = new float[inner.Vocabulary.Count];
                _logits[inner.Vocabulary.Tokenize(" the", addSpecial: false, parseSpecial: false)[^1]] = 10f;
            }

            return _logits;
        }

        public ITokenSampler CreateSampler(SamplingOptions options, string? grammar, LazyTriggers triggers, bool ignoreEos) =>
            inner.CreateSampler(options, grammar, triggers, ignoreEos);

        public void Dispose() => inner.Dispose();
    }
}
