using System.Buffers;
using System.Text;
using LlmServer.Batches;
using LlmServer.OpenAi;

namespace LlmServer.Tests.Errors;

public sealed class JsonErrorTextTests
{
    [Fact]
    public void A_batch_line_that_is_not_json_is_described_without_the_parsers_positions()
    {
        var content = Encoding.UTF8.GetBytes("x{\"custom_id\":\"a\"}\n");

        var (_, errors) = BatchFormat.Parse(content, maxLines: 10, endpoint: null);

        var error = Assert.Single(errors);
        Assert.Equal("Line 1 is not a valid JSON object: 'x' is an invalid start of a value (at byte 1).", error.Message);
    }

    [Theory]
    [InlineData("""{"custom_id":5,"method":"POST","url":"/v1/completions","body":{}}""", "(at $.custom_id, byte ")]
    [InlineData("""{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"max_tokens": }}""", "(at $.body.max_tokens, byte ")]
    [InlineData("""{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user"},{"content":tru}]}}""", "(at $.body.messages[1].content, byte ")]
    [InlineData("""{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"odd key": ]}}""", "(at $.body['odd key'], byte ")]
    [InlineData("""{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user"}, tru]}}""", "(at $.body.messages[1], byte ")]
    [InlineData("""{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"stop":["a","b",]}}""", "(at $.body.stop[2], byte ")]
    [InlineData("""{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"m",}}""", "(at $.body, byte ")]
    [InlineData("""{"custom_id":"a","body":{"\ud800": }}""", """(at $.body['\ud800'], byte """)]
    [InlineData("{\"custom_id\":\"a\",\"~\":1,\"body\":{\"max_tokens\": }}", "(at $.body.max_tokens, byte ")]
    [InlineData("{\"custom_id\":\"a\",\"body\":{\"~\": }}", "(at $.body['\uFFFD'], byte ")]
    public void A_batch_lines_error_names_the_field_it_is_in(string line, string where)
    {
        var (_, errors) = BatchFormat.Parse([.. WithByteFF(line), (byte)'\n'], maxLines: 10, endpoint: null);

        var error = Assert.Single(errors);
        Assert.Equal("invalid_json_line", error.Code);
        Assert.Contains(where, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"custom_id":"a","\ud800":1,"body":{"max_tokens": }}""")]
    [InlineData("""{"custom_id":"a","\ud800":1}""")]
    public void A_batch_line_with_a_name_that_is_not_unicode_is_refused_where_the_serializer_stopped(string line)
    {
        // The serializer decodes names (the reader does not), so it stops at the lone surrogate, before any syntax error.
        var (_, errors) = BatchFormat.Parse(Encoding.UTF8.GetBytes(line + "\n"), maxLines: 10, endpoint: null);

        var error = Assert.Single(errors);
        Assert.Equal("invalid_json_line", error.Code);
        Assert.Equal("Line 1 is not a valid JSON object: The JSON value could not be converted to LlmServer.Batches.BatchInputLine (at byte 27).", error.Message);
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens": }""", "is an invalid start of a value (at $.max_tokens, byte ")]
    [InlineData("""{"messages":[{"role":"user"}, tru]}""", "(at $.messages[1], byte ")]
    [InlineData("""{"stop":["a","b",]}""", "(at $.stop[2], byte ")]
    [InlineData("""{"stop":["a" "b"]}""", "(at $.stop[1], byte ")]
    [InlineData("""{"stop":[,"a"]}""", "(at $.stop, byte ")]
    [InlineData("""{"model":"m",}""", "(at byte ")]
    [InlineData("""{"messages":[],"model":"m" "n"}""", "(at byte ")]
    [InlineData("""{"messages":[{"role":"user"}] "model":"m"}""", "(at byte ")]
    [InlineData("""{"\ud800":1,"model": }""", "(at $.model, byte ")]
    [InlineData("""{"\ud800": }""", """(at $['\ud800'], byte """)]
    [InlineData("{\"~\":1,\"model\": }", "(at $.model, byte ")]
    [InlineData("{\"~\": }", "(at $['\uFFFD'], byte ")]
    public void A_request_body_that_is_not_json_names_the_field_it_stops_in(string json, string where)
    {
        var body = new ReadOnlySequence<byte>(WithByteFF(json));

        var error = Assert.Throws<OpenAiException>(() => JsonBodyReader.Parse(body, OpenAiJson.Context.ChatCompletionRequest));

        Assert.Contains(where, error.Message, StringComparison.Ordinal);
    }

    /// <summary>The text's UTF-8 with each <c>~</c> a 0xFF byte, which is never UTF-8.</summary>
    private static byte[] WithByteFF(string text) => [.. Encoding.UTF8.GetBytes(text).Select(b => b == (byte)'~' ? (byte)0xFF : b)];
}
