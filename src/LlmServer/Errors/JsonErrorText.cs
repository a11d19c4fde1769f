using System.Buffers;
using System.Text;
using System.Text.Json;

namespace LlmServer.Errors;

/// <summary>
/// A JSON parse error as a client reads it: System.Text.Json's reason without its internal trailer
/// (<c>Path: $.body.max_tokens | LineNumber: 0 | BytePositionInLine: 1.</c>: zero-based), then where in the text it
/// failed: the path of the field (below the root), and the position counted from 1.
/// </summary>
internal static class JsonErrorText
{
    /// <summary>
    /// Describes <paramref name="exception"/>, thrown reading <paramref name="json"/>. A syntax error's path is found
    /// by reading the text again: the reader knows none, and the serializer's stops at a field it keeps as raw JSON
    /// (a batch line's <c>body</c>); a type error keeps the serializer's.
    /// </summary>
    public static string Describe(JsonException exception, ReadOnlySequence<byte> json)
    {
        var message = exception.Message;
        var trailer = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (trailer < 0)
        {
            trailer = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        }

        var reason = (trailer < 0 ? message : message[..trailer]).TrimEnd().TrimEnd('.');
        var path = SyntaxErrorPath(json) ?? exception.Path;
        path = path is { Length: > 1 } ? path : null;
        var position = exception.BytePositionInLine is not { } inLine ? null
            : exception.LineNumber is > 0 and var line ? $"line {line + 1}, byte {inLine + 1}"
            : $"byte {inLine + 1}";
        return (path, position) switch
        {
            (null, null) => reason,
            (null, _) => $"{reason} (at {position})",
            (_, null) => $"{reason} (at {path})",
            _ => $"{reason} (at {path}, {position})",
        };
    }

    /// <inheritdoc cref="Describe(JsonException, ReadOnlySequence{byte})"/>
    public static string Describe(JsonException exception, string json) =>
        Describe(exception, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(json)));

    /// <summary>The path of the value the text stops being JSON in (<c>$.body.max_tokens</c>); null when it is JSON.</summary>
    private static string? SyntaxErrorPath(ReadOnlySequence<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        var frames = new List<Frame>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        frames[^1] = frames[^1] with { Name = reader.GetString() };
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        frames.RemoveAt(frames.Count - 1);
                        break;
                    default:
                        if (frames.Count > 0 && frames[^1].Index is { } index)
                        {
                            frames[^1] = frames[^1] with { Index = index + 1 };
                        }

                        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                        {
                            frames.Add(new Frame(null, reader.TokenType == JsonTokenType.StartArray ? -1 : null));
                        }

                        break;
                }
            }

            return null;
        }
        catch (JsonException)
        {
            var path = new StringBuilder("$");
            foreach (var frame in frames)
            {
                _ = frame switch
                {
                    { Index: >= 0 and var i } => path.Append('[').Append(i).Append(']'),
                    { Name: { } name } when name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') => path.Append('.').Append(name),
                    { Name: { } name } => path.Append("['").Append(name).Append("']"),
                    _ => path,
                };
            }

            return path.ToString();
        }
    }

    /// <summary>An object (the name of the property being read) or an array (the index of the item being read, from -1).</summary>
    private readonly record struct Frame(string? Name, int? Index);
}
