using LlmServer.Sessions;

namespace LlmServer.Tests.Sessions;

/// <summary>The one unit of the limits on user text: Unicode scalar values, not UTF-16 code units.</summary>
public sealed class TextLengthTests
{
    [Theory]
    [InlineData("", 0)]
    [InlineData("abc", 3)]
    [InlineData("a\U0001F600b", 3)]
    [InlineData("\U0001F468\u200D\U0001F469", 3)]
    [InlineData("e\u0301", 2)]
    public void Counts_unicode_scalar_values(string text, int characters)
    {
        Assert.Equal(characters, TextLength.Of(text));
        Assert.False(TextLength.Exceeds(text, characters));
        Assert.True(TextLength.Exceeds(text, characters - 1));
    }

    [Fact]
    public void A_lone_surrogate_counts_as_one()
    {
        // Built at run time: an attribute's string cannot hold one.
        Assert.Equal(2, TextLength.Of(new string(['\uD800', 'x'])));
    }
}
