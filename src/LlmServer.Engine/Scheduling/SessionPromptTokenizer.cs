namespace LlmServer.Engine.Scheduling;

/// <summary>
/// Tokenizes a session's next prompt onto the tokens already in its KV cache. Re-tokenizing text the model generated
/// need not give the tokens it generated, and a prompt tokenized in pieces need not match one tokenized whole; either
/// would break the match with the cache. So the tokens a session's KV holds are reused as they are wherever the new
/// prompt repeats their text, and only the new text is tokenized:
/// <list type="bullet">
/// <item>the prompt extends the resident text (the next turn): resident tokens, then the new text's tokens;</item>
/// <item>the prompt keeps a leading part of it and then the resident text from one of its exact token boundaries on
/// (the window slid: the system prompt stays, the oldest turns went): the leading part's tokens, the resident tokens
/// from that boundary, then the new text's tokens. The scheduler then moves the kept cells instead of prefilling.</item>
/// </list>
/// </summary>
internal static class SessionPromptTokenizer
{
    public static TokenizedPrompt Tokenize(ITokenVocabulary vocabulary, ResidentText? resident, string text, bool parseSpecial)
    {
        if (resident is null || resident.Text.Length == 0 || resident.Tokens.Length == 0)
        {
            return Whole(vocabulary, text, parseSpecial);
        }

        if (text.Length > resident.Text.Length && text.StartsWith(resident.Text, StringComparison.Ordinal))
        {
            var rest = vocabulary.Tokenize(text[resident.Text.Length..], addSpecial: false, parseSpecial);
            return new TokenizedPrompt([.. resident.Tokens, .. rest], [.. resident.Boundaries, new(resident.Text.Length, resident.Tokens.Length)]);
        }

        return TryKeepTail(vocabulary, resident, text, parseSpecial) ?? Whole(vocabulary, text, parseSpecial);
    }

    private static TokenizedPrompt Whole(ITokenVocabulary vocabulary, string text, bool parseSpecial) =>
        new(vocabulary.Tokenize(text, addSpecial: true, parseSpecial), []);

    private static TokenizedPrompt? TryKeepTail(ITokenVocabulary vocabulary, ResidentText resident, string text, bool parseSpecial)
    {
        var common = text.AsSpan().CommonPrefixLength(resident.Text);
        if (common == 0)
        {
            return null;
        }

        // Boundaries in ascending order: the first that fits keeps the most.
        foreach (var boundary in resident.Boundaries)
        {
            var kept = resident.Text.AsSpan(boundary.Text);
            if (boundary.Text <= 0 || kept.IsEmpty)
            {
                continue;
            }

            // The kept text must follow a leading part the two texts share.
            var searched = text.AsSpan(0, Math.Min(text.Length, common + kept.Length));
            var at = searched.IndexOf(kept, StringComparison.Ordinal);
            if (at <= 0 || at >= boundary.Text)
            {
                continue;
            }

            var lead = vocabulary.Tokenize(text[..at], addSpecial: true, parseSpecial);
            var rest = vocabulary.Tokenize(text[(at + kept.Length)..], addSpecial: false, parseSpecial);
            var keptTokens = resident.Tokens.AsSpan(boundary.Token);
            var boundaries = new List<TextTokenBoundary> { new(at, lead.Length) };
            foreach (var later in resident.Boundaries)
            {
                if (later.Text > boundary.Text)
                {
                    boundaries.Add(new(later.Text - boundary.Text + at, later.Token - boundary.Token + lead.Length));
                }
            }

            boundaries.Add(new(at + kept.Length, lead.Length + keptTokens.Length));
            return new TokenizedPrompt([.. lead, .. keptTokens, .. rest], [.. boundaries]);
        }

        return null;
    }
}

/// <summary>A prompt's tokens, and the places where its text and tokens split exactly (ascending).</summary>
internal sealed record TokenizedPrompt(int[] Tokens, TextTokenBoundary[] Boundaries);

/// <summary>A place where <see cref="Text"/> characters are exactly the first <see cref="Token"/> tokens.</summary>
internal readonly record struct TextTokenBoundary(int Text, int Token);
