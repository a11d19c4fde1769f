using System.Text;
using LlmServer.Engine.Text;

namespace LlmServer.Engine.Tests.Text;

public sealed class TextPipelineTests
{
    [Fact]
    public void Multi_byte_characters_split_across_tokens_are_held_until_complete()
    {
        var decoder = new Utf8StreamDecoder();
        var bytes = Encoding.UTF8.GetBytes("é😀x");
        var output = new StringBuilder();
        var pieces = new List<string>();
        foreach (var b in bytes)
        {
            var piece = decoder.Append([b]);
            pieces.Add(piece);
            output.Append(piece);
        }

        Assert.Equal("é😀x", output.ToString());
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD', StringComparison.Ordinal));
        Assert.Equal(string.Empty, decoder.Flush());
    }

    [Fact]
    public void An_unfinished_character_at_the_end_is_flushed_as_a_replacement()
    {
        var decoder = new Utf8StreamDecoder();
        Assert.Equal("a", decoder.Append([(byte)'a', 0xE2, 0x82]));
        Assert.Equal("\uFFFD", decoder.Flush());
    }

    [Fact]
    public void Stop_matcher_holds_back_possible_prefixes_and_releases_them_when_they_diverge()
    {
        var matcher = new StopSequenceMatcher(["</end>"]);
        Assert.Equal(("Hello ", false), matcher.Push("Hello </"));
        Assert.Equal(("</x", false), matcher.Push("x"));
        Assert.Equal(("ok", true), matcher.Push("ok</en" + "d> tail"));
    }

    [Fact]
    public void Stop_matcher_picks_the_earliest_of_several_stops()
    {
        var matcher = new StopSequenceMatcher(["bb", "a"]);
        Assert.Equal(("x", true), matcher.Push("xabb"));
    }

    [Fact]
    public void Stop_matcher_flush_returns_the_held_text()
    {
        var matcher = new StopSequenceMatcher(["STOP"]);
        Assert.Equal(("ab", false), matcher.Push("abST"));
        Assert.Equal("ST", matcher.Flush());
    }
}
