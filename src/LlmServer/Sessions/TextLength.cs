namespace LlmServer.Sessions;

/// <summary>
/// The one unit of the limits on user text (a message, a system prompt, a title, a session id): characters counted
/// as Unicode scalar values (<see cref="System.Text.Rune"/>s), so a character outside the Basic Multilingual Plane (an
/// emoji of one code point) is one, not two UTF-16 code units; an emoji built of several code points (a flag, a skin
/// tone, a ZWJ sequence) counts each; a lone surrogate counts as one.
/// </summary>
internal static class TextLength
{
    public static int Of(string text)
    {
        var count = 0;
        foreach (var _ in text.EnumerateRunes())
        {
            count++;
        }

        return count;
    }

    /// <summary>Whether <paramref name="text"/> has more than <paramref name="limit"/> characters.</summary>
    public static bool Exceeds(string text, int limit) => text.Length > limit && Of(text) > limit;
}
