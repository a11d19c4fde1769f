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
    public void A_batch_lines_error_names_the_field_it_is_in(string line, string where)
    {
        var (_, errors) = BatchFormat.Parse(Encoding.UTF8.GetBytes(line + "\n"), maxLines: 10, endpoint: null);

        Assert.Contains(where, Assert.Single(errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_request_body_that_is_not_json_names_the_field_it_stops_in()
    {
        var body = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens": }"""));

        var error = Assert.Throws<OpenAiException>(() => JsonBodyReader.Parse(body, OpenAiJson.Context.ChatCompletionRequest));

        Assert.Contains("is an invalid start of a value (at $.max_tokens, byte ", error.Message, StringComparison.Ordinal);
    }
}
