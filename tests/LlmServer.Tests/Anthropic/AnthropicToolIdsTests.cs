using LlmServer.Anthropic;

namespace LlmServer.Tests.Anthropic;

public sealed class AnthropicToolIdsTests
{
    [Theory]
    [InlineData("call_AbCdEfGhIjKlMnOpQrStUvWx", "toolu_AbCdEfGhIjKlMnOpQrStUvWx")]
    [InlineData("AbC123xyz", "toolu_AbC123xyz")]
    public void Engine_ids_go_out_as_toolu_ids_and_come_back_unchanged(string engineId, string wireId)
    {
        Assert.Equal(wireId, AnthropicToolIds.ToWire(engineId));
        Assert.Equal(engineId, AnthropicToolIds.FromWire(wireId));
    }

    [Theory]
    [InlineData("call_1")]
    [InlineData("t1")]
    [InlineData("my-own-id")]
    public void Other_ids_are_used_as_sent(string id) => Assert.Equal(id, AnthropicToolIds.FromWire(id));
}
