namespace LlmServer.Engine.Generation;

/// <summary>Per-request sampling. Temperature 0 (or less) selects greedily.</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 0.8f;

    /// <summary>Nucleus sampling; 1 disables it.</summary>
    public float TopP { get; init; } = 0.95f;

    /// <summary>Keep only the K most likely tokens; 0 disables it.</summary>
    public int TopK { get; init; } = 40;

    /// <summary>Drop tokens less likely than MinP times the most likely one; 0 disables it.</summary>
    public float MinP { get; init; } = 0.05f;

    /// <summary>Multiplicative repetition penalty over the last <see cref="PenaltyLastN"/> tokens; 1 disables it.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;

    /// <summary>OpenAI-style frequency penalty (-2 to 2).</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>OpenAI-style presence penalty (-2 to 2).</summary>
    public float PresencePenalty { get; init; }

    /// <summary>How many recent tokens the penalties look at.</summary>
    public int PenaltyLastN { get; init; } = 64;

    /// <summary>
    /// Seed for reproducible sampling, any value (llama.cpp's own "pick a random seed" value, 0xFFFFFFFF, samples as
    /// 0x7FFFFFFF does: half the range away, so the consecutive seeds of a request's choices never meet it);
    /// <c>null</c> picks a random one. Front ends make it from a client's seed with <see cref="SeedFrom"/>.
    /// </summary>
    public uint? Seed { get; init; }

    /// <summary>The <see cref="Seed"/> for a client's 64-bit seed: its halves folded, so every bit changes the sample.</summary>
    public static uint SeedFrom(long seed) => unchecked((uint)seed ^ (uint)(seed >> 32));

    /// <summary>The seed llama.cpp gets for <paramref name="seed"/>: never its "random seed" value (see <see cref="Seed"/>).</summary>
    internal static uint NativeSeed(uint seed) => seed == uint.MaxValue ? 0x7FFF_FFFFu : seed;

    /// <summary>Added to the logits of the given token ids before sampling (OpenAI's <c>logit_bias</c>: -100 to 100).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>True when no sampler other than argmax is needed.</summary>
    public bool IsGreedy => Temperature <= 0f;

    /// <summary>True when any penalty is active.</summary>
    public bool HasPenalties => RepeatPenalty != 1.0f || FrequencyPenalty != 0f || PresencePenalty != 0f;
}
