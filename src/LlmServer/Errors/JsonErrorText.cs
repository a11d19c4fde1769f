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
        var path = SyntaxErrorPath(json, exception) ?? exception.Path;
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

    /// <summary>
    /// The path of the value the text stops being JSON in (<c>$.body.max_tokens</c>); null when it is JSON, or when
    /// <paramref name="exception"/> is not that syntax error (it failed elsewhere: a name or string that is not valid
    /// Unicode, which the serializer decodes and the reader does not).
    /// </summary>
    private static string? SyntaxErrorPath(ReadOnlySequence<byte> json, JsonException exception)
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
                        frames[^1] = frames[^1] with { Name = PropertyName(ref reader), Finished = false };
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        frames.RemoveAt(frames.Count - 1);
                        if (frames.Count > 0)
                        {
                            frames[^1] = frames[^1] with { Finished = true };
                        }

                        break;
                    default:
                        if (frames.Count > 0)
                        {
                            // A container's value finishes when its frame is removed.
                            var scalar = reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray);
                            frames[^1] = frames[^1] with { Index = frames[^1].Index + 1, Finished = scalar };
                        }

                        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                        {
                            frames.Add(new Frame(null, reader.TokenType == JsonTokenType.StartArray ? -1 : null, Finished: false));
                        }

                        break;
                }
            }

            return null;
        }
        catch (JsonException syntax)
        {
            if (syntax.LineNumber != exception.LineNumber || syntax.BytePositionInLine != exception.BytePositionInLine)
            {
                return null;
            }

            var path = new StringBuilder("$");
            for (var i = 0; i < frames.Count; i++)
            {
                // After a finished value the text failed between values or in the next one: in an array that is the
                // next item; in an object, no name is known yet, so the object itself is where it failed.
                var next = i == frames.Count - 1 && frames[i].Finished;
                if (frames[i].Index is { } index)
                {
                    var item = next ? index + 1 : index;
                    _ = item >= 0 ? path.Append('[').Append(item).Append(']') : path;
                }
                else if (!next && frames[i].Name is { } name)
                {
                    _ = name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') ? path.Append('.').Append(name) : path.Append("['").Append(name).Append("']");
                }
            }

            return path.ToString();
        }
    }

    /// <summary>
    /// A property's name, never throwing: one that is not valid Unicode (bytes that are not UTF-8, a lone surrogate
    /// escape) is the text as written, its invalid bytes replaced (U+FFFD).
    /// </summary>
    private static string PropertyName(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException)
        {
            return Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan);
        }
    }

    /// <summary>
    /// An object (the name of the property being read) or an array (the index of the item being read, from -1), and
    /// whether the last token read in it finished a value.
    /// </summary>
    private readonly record struct Frame(string? Name, int? Index, bool Finished);
}
