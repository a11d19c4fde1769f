using System.Globalization;

namespace LlmServer.Engine.Models;

/// <summary>Typed reads of a GGUF's metadata, which llama.cpp hands over as strings.</summary>
internal static class GgufMetadata
{
    /// <summary>
    /// The integer under <c>{general.architecture}.{key}</c>, or null where the GGUF has none, or not one plain number
    /// (models whose layers differ store per-layer arrays).
    /// </summary>
    public static long? ArchitectureInteger(IReadOnlyDictionary<string, string> metadata, string key) =>
        metadata.TryGetValue("general.architecture", out var architecture) ? Integer(metadata, architecture + "." + key) : null;

    public static long? Integer(IReadOnlyDictionary<string, string> metadata, string key) =>
        metadata.TryGetValue(key, out var text) && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;
}
