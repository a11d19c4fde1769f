using System.Text.Json;

namespace LlmServer.Errors;

/// <summary>
/// A JSON parse error as a client reads it: System.Text.Json's reason without its internal trailer
/// (<c>Path: $ | LineNumber: 0 | BytePositionInLine: 1.</c>: zero-based, and naming no field of the API), then where
/// in the text it failed, counted from 1.
/// </summary>
internal static class JsonErrorText
{
    public static string Describe(JsonException exception)
    {
        var message = exception.Message;
        var trailer = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (trailer < 0)
        {
            trailer = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        }

        var reason = (trailer < 0 ? message : message[..trailer]).TrimEnd().TrimEnd('.');
        if (exception.BytePositionInLine is not { } position)
        {
            return reason;
        }

        return exception.LineNumber is > 0 and var line
            ? $"{reason} (line {line + 1}, byte {position + 1})"
            : $"{reason} (at byte {position + 1})";
    }
}
