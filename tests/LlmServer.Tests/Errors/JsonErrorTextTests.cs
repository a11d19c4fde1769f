using System.Text;
using LlmServer.Batches;

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
}
