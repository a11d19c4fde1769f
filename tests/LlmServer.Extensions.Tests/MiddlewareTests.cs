using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace LlmServer.Extensions.Tests;

[Collection(EngineHostCollection.Name)]
public sealed class MiddlewareTests(EngineHostFixture host)
{
    [Fact]
    public async Task Logging_OpenTelemetry_and_custom_middleware_wrap_the_engine_client()
    {
        host.Calls.Clear();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 4 };

        var response = await host.ChatClient.GetResponseAsync("The sun was shining.", options);
        var streamed = new List<ChatResponseUpdate>();
        await foreach (var update in host.ChatClient.GetStreamingResponseAsync("The sun was shining.", options))
        {
            streamed.Add(update);
        }

        Assert.Collection(
            host.Calls,
            call => Assert.Equal(nameof(IChatClient.GetResponseAsync), call.Method),
            call => Assert.Equal(nameof(IChatClient.GetStreamingResponseAsync), call.Method));
        Assert.All(host.Calls, call => Assert.Equal(4, call.Options!.MaxOutputTokens));

        Assert.Contains(host.Logs.Entries, e => e.Category.EndsWith("LoggingChatClient", StringComparison.Ordinal)
            && e.Level == LogLevel.Debug && e.Message.Contains("GetResponseAsync", StringComparison.Ordinal));
        Assert.Contains(host.Logs.Entries, e => e.Category.EndsWith("LoggingChatClient", StringComparison.Ordinal)
            && e.Message.Contains("GetStreamingResponseAsync", StringComparison.Ordinal));

        Assert.Contains(host.Activities, a => Equals(a.GetTagItem("gen_ai.response.id"), response.ResponseId));
        Assert.Contains(host.Activities, a => Equals(a.GetTagItem("gen_ai.response.id"), streamed[0].ResponseId));
    }
}
