using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text;
using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Tools;

/// <summary>
/// Call ids of nine alphanumerics, the only ones Mistral's templates render (they raise on any other). A call of
/// those models keeps the id the model wrote when it is such an id (<see cref="ToolCallFormats.KeepsModelId"/>), else
/// the engine makes one; ids a client chose itself (<c>call_...</c>, <c>toolu_...</c>) are renamed
/// for the template only (<see cref="ForTemplate"/>), so the API keeps the client's ids.
/// </summary>
public static class ShortToolCallIds
{
    public const int Length = 9;

    internal const string Alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    /// <summary>Whether <paramref name="id"/> is nine ASCII letters or digits.</summary>
    public static bool IsShort(string id) => id.Length == Length && id.All(char.IsAsciiLetterOrDigit);

    /// <summary>A new random short id, for a call without a valid id of the model's own.</summary>
    internal static string NewId() => RandomNumberGenerator.GetString(Alphanumerics, Length);

    /// <summary>
    /// The messages as a Mistral template renders them: each call id that is not short becomes a short one derived
    /// from it, the same in the call and in the tool message answering it. The derivation depends on the id alone
    /// (a clash within the request takes the next one), so every request of a conversation renders the same prompt
    /// and its KV cache stays warm. Short ids, the engine's own among them, are kept as they are.
    /// </summary>
    internal static IReadOnlyList<ChatTurn> ForTemplate(IReadOnlyList<ChatTurn> messages)
    {
        var ids = ToolCalling.CallIds(messages).ToList();
        if (ids.TrueForAll(IsShort))
        {
            return messages;
        }

        var taken = ids.Where(IsShort).ToHashSet(StringComparer.Ordinal);
        var renamed = new Dictionary<string, string>(StringComparer.Ordinal);
        var result = new ChatTurn[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            result[i] = message with
            {
                ToolCalls = message.ToolCalls?.Select(c => c with { Id = Short(c.Id) }).ToList(),
                ToolCallId = message.ToolCallId is { } answered ? Short(answered) : null,
            };
        }

        return result;

        string Short(string id)
        {
            if (id.Length == 0 || IsShort(id))
            {
                return id;
            }

            if (renamed.TryGetValue(id, out var known))
            {
                return known;
            }

            var salt = 0L;
            var candidate = Derive(id, salt);
            while (!taken.Add(candidate))
            {
                candidate = Derive(id, ++salt);
            }

            renamed[id] = candidate;
            return candidate;
        }
    }

    /// <summary>Nine base-62 digits of the id's 128-bit hash.</summary>
    private static string Derive(string id, long salt)
    {
        var hash = XxHash128.HashToUInt128(Encoding.UTF8.GetBytes(id), salt);
        Span<char> digits = stackalloc char[Length];
        for (var i = 0; i < Length; i++)
        {
            digits[i] = Alphanumerics[(int)(hash % (UInt128)Alphanumerics.Length)];
            hash /= (UInt128)Alphanumerics.Length;
        }

        return new string(digits);
    }
}
