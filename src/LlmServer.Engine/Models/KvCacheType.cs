using LLama.Native;

namespace LlmServer.Engine.Models;

/// <summary>
/// The element types llama.cpp accepts for the K and V caches (as <c>llama-server --cache-type-k</c>), by the names
/// users know. Quantized types store a block of 32 values in fewer bytes.
/// </summary>
internal static class KvCacheType
{
    private static readonly Dictionary<string, (GGMLType Type, int BlockBytes, int BlockValues)> s_types = new(StringComparer.OrdinalIgnoreCase)
    {
        ["f32"] = (GGMLType.GGML_TYPE_F32, 4, 1),
        ["f16"] = (GGMLType.GGML_TYPE_F16, 2, 1),
        ["bf16"] = ((GGMLType)30, 2, 1),
        ["q8_0"] = (GGMLType.GGML_TYPE_Q8_0, 34, 32),
        ["q4_0"] = (GGMLType.GGML_TYPE_Q4_0, 18, 32),
        ["q4_1"] = (GGMLType.GGML_TYPE_Q4_1, 20, 32),
        ["iq4_nl"] = ((GGMLType)20, 18, 32),
        ["q5_0"] = (GGMLType.GGML_TYPE_Q5_0, 22, 32),
        ["q5_1"] = (GGMLType.GGML_TYPE_Q5_1, 24, 32),
    };

    public static IEnumerable<string> Names => s_types.Keys;

    public static bool IsKnown(string? name) => name is not null && s_types.ContainsKey(name);

    public static GGMLType Parse(string name) => s_types[name].Type;

    /// <summary>Quantized V caches need flash attention in llama.cpp (it refuses the context otherwise).</summary>
    public static bool IsQuantized(string name) => s_types[name].BlockValues > 1;

    /// <summary>Values per quantization block: a K or V row must hold whole blocks.</summary>
    public static int BlockValues(string name) => s_types[name].BlockValues;

    public static double BytesPerValue(string name) => (double)s_types[name].BlockBytes / s_types[name].BlockValues;
}
