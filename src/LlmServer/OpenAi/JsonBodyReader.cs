using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using LlmServer.Errors;

namespace LlmServer.OpenAi;

/// <summary>
/// Reads a JSON request body and turns every way it can be wrong into an <see cref="OpenAiException"/>: 400 for
/// malformed JSON, 400 naming the field of a wrong type. Its size is <c>Server:MaxRequestBodyBytes</c>'s business
/// (<see cref="Operations.RequestBodyLimitMiddleware"/>).
/// </summary>
internal static class JsonBodyReader
{
    public static async Task<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken)
        where T : class
    {
        // A body over Server:MaxRequestBodyBytes fails the read; RequestBodyLimitMiddleware answers it.
        var reader = context.Request.BodyReader;
        ReadResult result;
        while (true)
        {
            result = await reader.ReadAsync(cancellationToken);
            if (result.IsCompleted)
            {
                break;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }

        try
        {
            return Parse(result.Buffer, typeInfo);
        }
        finally
        {
            reader.AdvanceTo(result.Buffer.End);
        }
    }

    /// <summary>Parses a body; a first pass tells malformed JSON apart from a well-formed body with a wrong field.</summary>
    public static T Parse<T>(ReadOnlySequence<byte> body, JsonTypeInfo<T> typeInfo)
        where T : class
    {
        CheckWellFormedObject(body);
        var reader = new Utf8JsonReader(body);
        try
        {
            return JsonSerializer.Deserialize(ref reader, typeInfo)
                ?? throw new OpenAiException("The request body must be a JSON object.");
        }
        catch (JsonException ex)
        {
            var param = ParamFromPath(ex.Path);
            if (param is null)
            {
                throw new OpenAiException("The request body must be a JSON object.");
            }

            if (ex is InvalidFieldException invalid)
            {
                param += invalid.Subfield;
                throw OpenAiException.InvalidField(param, $"Invalid value for '{param}': {ex.Message}");
            }

            var expected = DescribeExpected(typeInfo, param);
            throw Unreadable(body, ex.Path!, expected) is { } why
                ? OpenAiException.InvalidField(param, $"Invalid value for '{param}': {why}")
                : OpenAiException.InvalidType(param, expected);
        }
    }

    /// <summary>
    /// Why a value of the kind expected could not be read (an integer literal beyond its type, a string that is not
    /// valid Unicode); null when the value is of another kind, a plain type error.
    /// </summary>
    private static string? Unreadable(ReadOnlySequence<byte> body, string path, string expected)
    {
        using var document = JsonDocument.Parse(body);
        if (ValueAt(document.RootElement, path) is not { } value)
        {
            return null;
        }

        switch (value.ValueKind)
        {
            case JsonValueKind.Number when expected == "an integer" && value.GetRawText().AsSpan().IndexOfAny(".eE") < 0:
                return $"{value.GetRawText()} is out of range for an integer.";
            case JsonValueKind.String when expected == "a string":
                try
                {
                    _ = value.GetString();
                    return null;
                }
                catch (InvalidOperationException)
                {
                    return "the string is not valid Unicode text (a lone surrogate escape, or bytes that are not UTF-8).";
                }

            default:
                return null;
        }
    }

    /// <summary>The element at a serializer path (<c>$.messages[0].content</c>, <c>$['odd name']</c>); null if none.</summary>
    private static JsonElement? ValueAt(JsonElement root, string path)
    {
        var element = root;
        var i = path.StartsWith('$') ? 1 : 0;
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                var end = path.IndexOfAny(['.', '['], i + 1);
                end = end < 0 ? path.Length : end;
                if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(path[(i + 1)..end], out element))
                {
                    return null;
                }

                i = end;
            }
            else if (path[i] == '[' && i + 1 < path.Length && path[i + 1] == '\'')
            {
                var end = path.IndexOf("']", i + 2, StringComparison.Ordinal);
                if (end < 0 || element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(path[(i + 2)..end], out element))
                {
                    return null;
                }

                i = end + 2;
            }
            else if (path[i] == '[')
            {
                var end = path.IndexOf(']', i + 1);
                if (end < 0 || element.ValueKind != JsonValueKind.Array
                    || !int.TryParse(path.AsSpan(i + 1, end - i - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                    || index >= element.GetArrayLength())
                {
                    return null;
                }

                element = element[index];
                i = end + 1;
            }
            else
            {
                return null;
            }
        }

        return element;
    }

    private static void CheckWellFormedObject(ReadOnlySequence<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        try
        {
            if (!reader.Read())
            {
                throw new OpenAiException("The request body is empty; send a JSON object.");
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new OpenAiException("The request body must be a JSON object.");
            }

            reader.Skip();
            if (reader.Read())
            {
                throw new OpenAiException("The request body has data after its JSON object.");
            }
        }
        catch (JsonException ex)
        {
            throw new OpenAiException(
                $"We could not parse the JSON body of your request ({JsonErrorText.Describe(ex, body)}). Send a valid JSON object.");
        }
    }

    /// <summary><c>$.messages[0].content</c> becomes <c>messages[0].content</c>; the root names no field.</summary>
    private static string? ParamFromPath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$")
        {
            return null;
        }

        return path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
    }

    /// <summary>Follows the field path through the source-generated metadata to say what type was expected.</summary>
    private static string DescribeExpected(JsonTypeInfo root, string param)
    {
        var type = root.Type;
        var info = root;
        foreach (var segment in param.Split('.'))
        {
            var bracket = segment.IndexOf('[', StringComparison.Ordinal);
            var name = bracket < 0 ? segment : segment[..bracket];
            var property = info.Properties.FirstOrDefault(p => p.Name == name);
            if (property is null)
            {
                return "another type";
            }

            type = property.PropertyType;
            for (var i = bracket; i >= 0; i = segment.IndexOf('[', i + 1))
            {
                type = ElementType(type) ?? type;
            }

            info = info.Options.GetTypeInfo(Nullable.GetUnderlyingType(type) ?? type);
        }

        return Describe(type);
    }

    /// <summary>What a JSON value is, as a refusal names it ("an object").</summary>
    public static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        _ => "null",
    };

    private static Type? ElementType(Type type) =>
        type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) ? type.GetGenericArguments()[0] : null;

    private static string Describe(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(int) || type == typeof(long))
        {
            return "an integer";
        }

        if (type == typeof(float) || type == typeof(double))
        {
            return "a number";
        }

        if (type == typeof(bool))
        {
            return "a boolean";
        }

        if (type == typeof(string))
        {
            return "a string";
        }

        if (ElementType(type) is not null)
        {
            return "an array";
        }

        return type == typeof(JsonElement) ? "a JSON value" : "an object";
    }
}
