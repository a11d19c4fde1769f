using System.Text;
using System.Text.Json;
using LlmServer.Errors;
using LlmServer.OpenAi;

namespace LlmServer.Batches;

/// <summary>Reads and checks a batch input file (JSONL): the one place that knows what a valid request line is.</summary>
internal static class BatchFormat
{
    /// <summary>The endpoints a batch may run.</summary>
    public static readonly string[] Endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

    /// <summary>The request lines, with every problem found (line numbers from 1).</summary>
    public static (List<ParsedLine> Lines, List<BatchError> Errors) Parse(byte[] content, int maxLines, string? endpoint)
    {
        var lines = new List<ParsedLine>();
        var errors = new List<BatchError>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        // Windows tools often start a UTF-8 file with a byte order mark; it is not part of the first line.
        var text = Encoding.UTF8.GetString(content.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? content.AsSpan(Encoding.UTF8.Preamble.Length) : content);
        var number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            var line = raw.TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            if (lines.Count + errors.Count >= maxLines)
            {
                errors.Add(new BatchError("too_many_lines", $"The file has more than {maxLines} request lines (Batches:MaxLines).", null, number));
                break;
            }

            BatchInputLine? parsed;
            try
            {
                parsed = JsonSerializer.Deserialize(line, BatchJson.Context.BatchInputLine);
            }
            catch (JsonException ex)
            {
                errors.Add(new BatchError("invalid_json_line", $"Line {number} is not a valid JSON object: {JsonErrorText.Describe(ex, line)}.", null, number));
                continue;
            }

            var problem = parsed switch
            {
                null => "is not a JSON object",
                { CustomId: null or "" } => "has no 'custom_id'",
                { Method: not "POST" } => "must use method POST",
                { Url: var url } when !Endpoints.Contains(url) => $"has url '{url}'; batches run {string.Join(", ", Endpoints)}",
                { Url: var url } when endpoint is not null && url != endpoint => $"has url '{url}', but the batch's endpoint is '{endpoint}'",
                { Body: not { ValueKind: JsonValueKind.Object } } => "has no 'body' object",
                { Body: { } body } when body.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.True => "asks for streaming, which batches do not do",
                { CustomId: var id } when !seen.Add(id!) => $"repeats custom_id '{id}'",
                _ => null,
            };
            if (problem is not null)
            {
                errors.Add(new BatchError("invalid_request", $"Line {number} {problem}.", null, number));
                continue;
            }

            lines.Add(new ParsedLine(lines.Count, parsed!.CustomId!, parsed.Url!, Encoding.UTF8.GetBytes(parsed.Body!.Value.GetRawText())));
        }

        if (lines.Count == 0 && errors.Count == 0)
        {
            errors.Add(new BatchError("empty_file", "The file holds no request lines.", null, null));
        }

        return (lines, errors);
    }

    /// <summary>The first problem, as the 400 an upload gets.</summary>
    public static OpenAiException Refusal(IReadOnlyList<BatchError> errors) => OpenAiException.InvalidField(
        "file",
        errors.Count == 1 ? errors[0].Message : $"{errors[0].Message} ({errors.Count - 1} more problems)");
}

/// <summary>One request line: its place, id, endpoint and JSON body.</summary>
internal sealed record ParsedLine(int Index, string CustomId, string Url, byte[] Body);
