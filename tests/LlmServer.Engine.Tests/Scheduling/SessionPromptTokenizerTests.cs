using System.Text;
using System.Text.RegularExpressions;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Scheduling;

public sealed class SessionPromptTokenizerTests
{
    // One token per character; the "generated" answers use tokens no tokenization of their text would give (1000+),
    // so reuse of the resident tokens is visible.
    private static readonly ITokenVocabulary s_vocabulary = new FakeBackend(1, 64).Vocabulary;

    private const int NoLimit = int.MaxValue;

    [Fact]
    public void The_next_turn_extends_the_resident_tokens()
    {
        var resident = Resident(("sys\n", false), ("u1\n", false), ("a1", true));
        var prompt = SessionPromptTokenizer.Tokenize(s_vocabulary, resident, resident.Text + "\nu2\n", parseSpecial: false, NoLimit);
        Assert.Equal([.. resident.Tokens, .. Chars("\nu2\n")], prompt.Tokens);
        Assert.Equal(new TextTokenBoundary(resident.Text.Length, resident.Tokens.Length), prompt.Boundaries[^1]);
    }

    [Fact]
    public void A_slid_window_reuses_the_kept_turns_tokens_from_an_exact_boundary()
    {
        var resident = Resident(("sys", false), ("\nu1\n", false), ("a1", true), ("\nu2\n", false), ("a2", true));
        var slid = "sys" + "\nu2\n" + "a2" + "\nu3\n";
        var prompt = SessionPromptTokenizer.Tokenize(s_vocabulary, resident, slid, parseSpecial: false, NoLimit);

        int[] expected = [.. Chars("sys"), .. resident.Tokens[9..], .. Chars("\nu3\n")];
        Assert.Equal(expected, prompt.Tokens);

        // Its boundaries map the kept turns to their new places, for the slide after this one.
        Assert.Contains(new TextTokenBoundary(3, 3), prompt.Boundaries);
        Assert.Contains(new TextTokenBoundary(7, 7), prompt.Boundaries);
        Assert.Equal(new TextTokenBoundary(9, 9), prompt.Boundaries[^1]);
    }

    [Fact]
    public void A_slide_after_an_answer_cut_at_its_token_limit_keeps_from_inside_the_next_segment()
    {
        // The first answer's last token ("Z") was not decoded: the next segment's text starts with it.
        var resident = Resident(("sys", false), ("\nu1\n", false), ("a1", true), ("Z\nu2\n", false), ("a2", true));
        var slid = "sys" + "\nu2\n" + "a2" + "Y\nu3\n";
        var prompt = SessionPromptTokenizer.Tokenize(s_vocabulary, resident, slid, parseSpecial: false, NoLimit);

        int[] expected = [.. Chars("sys"), .. resident.Tokens[10..], .. Chars("Y\nu3\n")];
        Assert.Equal(expected, prompt.Tokens);
    }

    [Fact]
    public void A_slide_after_a_cut_answer_keeps_the_kept_turns_though_their_first_message_begins_inside_a_word_as_the_dropped_one()
    {
        // Words are one token each, so the KV does not split "food" where it parts from the dropped "fox" ("fo|od").
        var words = new WordVocabulary();
        var resident = Resident(words, ("sys.", false), ("\nfox tale\n", false), ("a1 Z", true), ("Q\nfood tale\n", false), ("a2", true));
        var slid = "sys." + "\nfood tale\n" + "a2" + "Y\nu3\n";
        var prompt = SessionPromptTokenizer.Tokenize(words, resident, slid, parseSpecial: false, NoLimit);

        // The kept text begins where the two texts begin to agree, at the kept turn's first character.
        var keptFrom = resident.Boundaries[^1].Token - words.TokenizeContinuation("\nfood tale\n", false).Length;
        int[] expected = [.. words.Tokenize("sys.", false, false), .. resident.Tokens[keptFrom..], .. words.TokenizeContinuation("Y\nu3\n", false)];
        Assert.Equal(expected, prompt.Tokens);
    }

    [Fact]
    public void A_regenerate_after_a_slide_gets_the_tokens_its_prompt_had()
    {
        // The resident text of a slid window (system prompt, then kept turns), the last prompt and its answer.
        var resident = Resident(("sys", false), ("\nu2\n", false), ("a2", true), ("\nu3\n", false), ("a3", true));
        var prompt = SessionPromptTokenizer.Tokenize(s_vocabulary, resident, "sys\nu2\na2\nu3\n", parseSpecial: false, NoLimit);
        Assert.Equal(resident.Tokens[..13], prompt.Tokens);
        Assert.Equal(new TextTokenBoundary(13, 13), prompt.Boundaries[^1]);
    }

    [Fact]
    public void An_edit_keeps_the_resident_tokens_up_to_the_edited_message_and_tokenizes_the_rest()
    {
        var resident = Resident(("sys", false), ("\nu1\n", false), ("a1", true), ("\nu2\n", false), ("a2", true));
        var prompt = SessionPromptTokenizer.Tokenize(s_vocabulary, resident, "sys\nu1\na1\nedited\n", parseSpecial: false, NoLimit);
        Assert.Equal([.. resident.Tokens[..9], .. Chars("\nedited\n")], prompt.Tokens);
        Assert.Equal(new TextTokenBoundary(9, 9), prompt.Boundaries[^1]);
    }

    [Fact]
    public void A_prompt_unrelated_to_the_resident_text_is_tokenized_whole()
    {
        var resident = Resident(("sys", false), ("\nu1\n", false), ("a1", true));
        var prompt = SessionPromptTokenizer.Tokenize(s_vocabulary, resident, "other\nu1\n", parseSpecial: false, NoLimit);
        Assert.Equal(Chars("other\nu1\n"), prompt.Tokens);
        Assert.Empty(prompt.Boundaries);
    }

    [Fact]
    public void Reused_tokens_that_outnumber_the_limit_give_way_to_the_fresh_tokenization_that_fits()
    {
        // The model wrote its answer a character a token; tokenized again, its words are a token each. The window was
        // sized by the fresh count, so reusing the KV's tokens would overflow a slot the fresh tokens fit.
        var words = new WordVocabulary();
        var resident = Resident(words, ("sys.", false), ("\nhello there\n", false), ("fine words here", true));
        var text = resident.Text + "\nmore\n";
        var fresh = words.Tokenize(text, addSpecial: true, parseSpecial: false);

        var prompt = SessionPromptTokenizer.Tokenize(words, resident, text, parseSpecial: false, maxTokens: fresh.Length);

        Assert.Equal(fresh, prompt.Tokens);
        Assert.Empty(prompt.Boundaries);
    }

    [Fact]
    public void Reused_tokens_within_the_limit_are_kept_though_a_fresh_tokenization_is_shorter()
    {
        var words = new WordVocabulary();
        var resident = Resident(words, ("sys.", false), ("\nhello there\n", false), ("fine words here", true));
        var text = resident.Text + "\nmore\n";
        int[] reused = [.. resident.Tokens, .. words.TokenizeContinuation("\nmore\n", parseSpecial: false)];

        var prompt = SessionPromptTokenizer.Tokenize(words, resident, text, parseSpecial: false, maxTokens: reused.Length);

        Assert.Equal(reused, prompt.Tokens);
        Assert.True(reused.Length > words.Tokenize(text, addSpecial: true, parseSpecial: false).Length);
    }

    private static int[] Chars(string text) => s_vocabulary.Tokenize(text, false, false);

    /// <summary>Resident text built from pieces, with a boundary after each piece but the last.</summary>
    private static ResidentText Resident(params (string Text, bool Generated)[] pieces) => Resident(s_vocabulary, pieces);

    private static ResidentText Resident(ITokenVocabulary vocabulary, params (string Text, bool Generated)[] pieces)
    {
        var text = string.Empty;
        var tokens = new List<int>();
        var boundaries = new List<TextTokenBoundary>();
        foreach (var (piece, generated) in pieces)
        {
            if (text.Length > 0)
            {
                boundaries.Add(new TextTokenBoundary(text.Length, tokens.Count));
            }

            text += piece;
            tokens.AddRange(generated ? piece.Select(c => 1000 + c) : vocabulary.TokenizeContinuation(piece, parseSpecial: false));
        }

        return new ResidentText(text, [.. tokens], [.. boundaries]);
    }

    /// <summary>A run of letters is one token (its id given on first sight), any other character a token of its own.</summary>
    private sealed class WordVocabulary : ITokenVocabulary
    {
        private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);

        public int Count => 4096;

        public bool AddBos => false;

        public TokenCountBound Bound { get; } = TokenCountBound.WithLongestToken(16);

        public int[] Tokenize(string text, bool addSpecial, bool parseSpecial) =>
            [.. Regex.Matches(text, @"\p{L}+|[^\p{L}]").Select(m => Id(m.Value))];

        public int[] TokenizeContinuation(string text, bool parseSpecial) => Tokenize(text, false, parseSpecial);

        public int TokenToBytes(int token, Span<byte> destination, bool special) =>
            Encoding.UTF8.GetBytes(_ids.First(pair => pair.Value == token).Key, destination);

        public bool IsEndOfGeneration(int token) => false;

        private int Id(string word) => _ids.TryGetValue(word, out var id) ? id : _ids[word] = 2000 + _ids.Count;
    }
}
