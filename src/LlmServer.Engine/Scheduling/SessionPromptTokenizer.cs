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
/// <item>the prompt repeats the resident text up to one of its boundaries and then differs (a regenerate or an edit):
/// the resident tokens up to there, then the new text's tokens; so the answer sees the tokens the conversation had,
/// as it would have had the history not changed.</item>
/// </list>
/// The model may have written its answers in finer pieces than tokenizing their text gives, so reused tokens can
/// outnumber a fresh tokenization: where they exceed <c>maxTokens</c>, the prompt is tokenized whole instead (what a
/// session's window was sized by), losing only this turn's reuse, never the turn.
/// </summary>
internal static class SessionPromptTokenizer
{
    /// <param name="maxTokens">The most tokens the prompt may have (see <see cref="InferenceScheduler.MostPromptTokens"/>).</param>
    public static TokenizedPrompt Tokenize(ITokenVocabulary vocabulary, ResidentText? resident, string text, bool parseSpecial, int maxTokens)
    {
        if (resident is null || resident.Text.Length == 0 || resident.Tokens.Length == 0)
        {
            return Whole(vocabulary, text, parseSpecial);
        }

        var reused = Reuse(vocabulary, resident, text, parseSpecial);
        if (reused.Tokens.Length <= maxTokens)
        {
            return reused;
        }

        var whole = Whole(vocabulary, text, parseSpecial);
        return whole.Tokens.Length < reused.Tokens.Length ? whole : reused;
    }

    private static TokenizedPrompt Reuse(ITokenVocabulary vocabulary, ResidentText resident, string text, bool parseSpecial)
    {
        if (text.Length > resident.Text.Length && text.StartsWith(resident.Text, StringComparison.Ordinal))
        {
            var rest = vocabulary.TokenizeContinuation(text[resident.Text.Length..], parseSpecial);
            return new TokenizedPrompt([.. resident.Tokens, .. rest], [.. resident.Boundaries, new(resident.Text.Length, resident.Tokens.Length)]);
        }

        // A slid window keeps resident tokens beyond the shared beginning; else the longest shared beginning wins.
        var head = TryKeepHead(vocabulary, resident, text, parseSpecial);
        var tail = TryKeepTail(vocabulary, resident, text, parseSpecial);
        return tail is not null && (head is null || tail.Boundaries[^1].Text > head.Boundaries[^1].Text)
            ? tail
            : head ?? Whole(vocabulary, text, parseSpecial);
    }

    /// <summary>The resident tokens up to the last boundary within the text the prompt shares with them, then the rest's tokens.</summary>
    private static TokenizedPrompt? TryKeepHead(ITokenVocabulary vocabulary, ResidentText resident, string text, bool parseSpecial)
    {
        var common = text.AsSpan().CommonPrefixLength(resident.Text);
        var kept = resident.Boundaries.LastOrDefault(b => b.Text <= common && b.Token > 0);
        if (kept.Token == 0)
        {
            return null;
        }

        var rest = kept.Text < text.Length ? vocabulary.TokenizeContinuation(text[kept.Text..], parseSpecial) : [];
        return new TokenizedPrompt([.. resident.Tokens.AsSpan(0, kept.Token), .. rest], [.. resident.Boundaries.Where(b => b.Text <= kept.Text)]);
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

        // Boundaries in ascending order: the first whose tail the new text repeats keeps the most.
        var previous = new TextTokenBoundary(0, 0);
        foreach (var boundary in resident.Boundaries)
        {
            var segmentStart = previous;
            previous = boundary;
            var tail = resident.Text.AsSpan(boundary.Text);
            var found = boundary.Text <= 0 || tail.IsEmpty ? -1 : text.AsSpan().IndexOf(tail, StringComparison.Ordinal);
            if (found <= 0)
            {
                continue;
            }

            // The kept text may begin before the boundary, inside the segment before it (a turn's answer that ended
            // at its token limit leaves its last token's text at the start of the next segment): walk back while the
            // texts agree, within the new text's shared leading part or back into it.
            var at = found;
            var from = boundary.Text;
            while (at > 0 && from > segmentStart.Text && text[at - 1] == resident.Text[from - 1])
            {
                at--;
                from--;
            }

            if (at > common)
            {
                return null;
            }

            // The kept text begins where the KV's tokens split as its text tokenizes again: first where the texts begin
            // to agree (past the dropped turns: a template's marker), else where the shared leading part ends, which
            // may cut a word (the first kept and the first dropped message alike up to there) the KV holds whole.
            var keptFrom = at > 0 ? KeptTokenStart(vocabulary, resident, from, boundary, parseSpecial) : -1;
            var sharedEnd = Math.Min(common, found);
            if (keptFrom < 0 && sharedEnd > at)
            {
                from += sharedEnd - at;
                at = sharedEnd;
                keptFrom = KeptTokenStart(vocabulary, resident, from, boundary, parseSpecial);
            }

            if (keptFrom < 0)
            {
                return null;
            }

            var kept = resident.Text.AsSpan(from);
            var lead = vocabulary.Tokenize(text[..at], addSpecial: true, parseSpecial);
            var rest = vocabulary.TokenizeContinuation(text[(at + kept.Length)..], parseSpecial);
            var keptTokens = resident.Tokens.AsSpan(keptFrom);
            var boundaries = new List<TextTokenBoundary> { new(at, lead.Length) };
            foreach (var later in resident.Boundaries)
            {
                if (later.Text > from)
                {
                    boundaries.Add(new(later.Text - from + at, later.Token - keptFrom + lead.Length));
                }
            }

            boundaries.Add(new(at + kept.Length, lead.Length + keptTokens.Length));
            return new TokenizedPrompt([.. lead, .. keptTokens, .. rest], [.. boundaries]);
        }

        return null;
    }

    /// <summary>
    /// The resident token where the kept text (from <paramref name="from"/>) begins: the boundary's own token, or,
    /// when the kept text begins inside the segment before it, the token from which tokenizing that part of the segment
    /// again gives exactly the segment's last tokens. -1 when there is no such token.
    /// </summary>
    private static int KeptTokenStart(ITokenVocabulary vocabulary, ResidentText resident, int from, TextTokenBoundary boundary, bool parseSpecial)
    {
        if (from == boundary.Text)
        {
            return boundary.Token;
        }

        var retokenized = vocabulary.TokenizeContinuation(resident.Text[from..boundary.Text], parseSpecial);
        var start = boundary.Token - retokenized.Length;
        return start >= 0 && resident.Tokens.AsSpan(start, retokenized.Length).SequenceEqual(retokenized) ? start : -1;
    }
}

/// <summary>A prompt's tokens, and the places where its text and tokens split exactly (ascending).</summary>
internal sealed record TokenizedPrompt(int[] Tokens, TextTokenBoundary[] Boundaries);

/// <summary>A place where <see cref="Text"/> characters are exactly the first <see cref="Token"/> tokens.</summary>
internal readonly record struct TextTokenBoundary(int Text, int Token);
