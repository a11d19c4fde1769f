using System.Text.Json.Serialization;

namespace LlmServer.Operations;

/// <summary>Writes errors in the OpenAI shape <c>{"error":{"message","type","param","code"}}</c> for the operations middleware.</summary>
internal static class OpenAiErrorResponse
{
    public static Task WriteAsync(HttpContext context, int statusCode, string message, string type, string? code, CancellationToken cancellationToken)
    {
        context.Response.StatusCode = statusCode;
        return context.Response.WriteAsJsonAsync(new ErrorEnvelope(new ErrorBody(message, type, null, code)), cancellationToken);
    }

    internal sealed record ErrorEnvelope([property: JsonPropertyName("error")] ErrorBody Error);

    internal sealed record ErrorBody(
        [property: JsonPropertyName("message")] string Message,
        [property: JsonPropertyName("type")] string Type,
        [property: JsonPropertyName("param")] string? Param,
        [property: JsonPropertyName("code")] string? Code);
}
