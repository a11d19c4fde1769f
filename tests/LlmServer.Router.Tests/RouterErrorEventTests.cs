using System.Text;
using System.Text.Json;
using LlmServer.Router.Errors;
using LlmServer.Router.Replicas;
using Microsoft.AspNetCore.Http;

namespace LlmServer.Router.Tests;

/// <summary>The event the router ends a stream with when its replica goes away: each API's own shape and numbering.</summary>
public sealed class RouterErrorEventTests
{
    private static async Task<EventStreamTap> PassAsync(string stream, int writeSize)
    {
        var tap = new EventStreamTap(Stream.Null);
        var bytes = Encoding.UTF8.GetBytes(stream);
        for (var i = 0; i < bytes.Length; i += writeSize)
        {
            await tap.WriteAsync(bytes.AsMemory(i, Math.Min(writeSize, bytes.Length - i)));
        }

        return tap;
    }

    private static HttpContext Request(string path) => new DefaultHttpContext { Request = { Path = path } };

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    public async Task A_lost_responses_stream_ends_with_a_Responses_error_event_numbered_next(int writeSize)
    {
        var tap = await PassAsync(
            "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{}}\n\n" +
            ": keep-alive\n\n" +
            "event: response.output_text.delta\r\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":41,\"item_id\":\"msg_1\",\"delta\":\"\\\"sequence_number\\\":99\"}\r\n\r\n",
            writeSize);

        var text = RouterErrors.StreamFailureEvent(Request("/v1/responses"), tap);

        Assert.StartsWith("event: error\ndata: ", text, StringComparison.Ordinal);
        Assert.EndsWith("\n\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", text, StringComparison.Ordinal);
        using var error = JsonDocument.Parse(text["event: error\ndata: ".Length..]);
        Assert.Equal("error", error.RootElement.GetProperty("type").GetString());
        Assert.Equal("replica_lost", error.RootElement.GetProperty("code").GetString());
        Assert.Equal(42, error.RootElement.GetProperty("sequence_number").GetInt64());
        Assert.False(string.IsNullOrEmpty(error.RootElement.GetProperty("message").GetString()));
    }

    [Fact]
    public void A_responses_stream_lost_before_its_first_event_gets_sequence_number_zero()
    {
        var text = RouterErrors.StreamFailureEvent(Request("/v1/responses"), new EventStreamTap(Stream.Null));
        using var error = JsonDocument.Parse(text["event: error\ndata: ".Length..]);
        Assert.Equal(0, error.RootElement.GetProperty("sequence_number").GetInt64());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    public async Task A_lost_session_stream_ends_with_an_error_event_after_the_last_seq_with_its_id_line(int writeSize)
    {
        var tap = await PassAsync(
            "id: 11\ndata: {\"seq\":11,\"type\":\"delta\",\"text\":\"id: 500\"}\n\n: keep-alive\n\nid: 12\ndata: {\"seq\":12,\"type\":\"delta\",\"text\":\"a\"}\n\n",
            writeSize);

        var text = RouterErrors.StreamFailureEvent(Request("/api/sessions/s1/events"), tap);

        Assert.StartsWith("id: 13\ndata: ", text, StringComparison.Ordinal);
        using var error = JsonDocument.Parse(text["id: 13\ndata: ".Length..]);
        Assert.Equal(13, error.RootElement.GetProperty("seq").GetInt64());
        Assert.Equal("error", error.RootElement.GetProperty("type").GetString());
        Assert.Equal("replica_lost", error.RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public void A_lost_chat_completions_stream_keeps_its_error_chunk_and_done()
    {
        var text = RouterErrors.StreamFailureEvent(Request("/v1/chat/completions"), null);
        Assert.EndsWith("\n\ndata: [DONE]\n\n", text, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"replica_lost\"", text, StringComparison.Ordinal);
    }
}
