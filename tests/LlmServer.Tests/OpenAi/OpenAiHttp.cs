using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LlmServer.Testing;

namespace LlmServer.Tests.OpenAi;

/// <summary>Raw HTTP helpers: JSON posts and a line-exact server-sent-events reader.</summary>
internal static class OpenAiHttp
{
    public const string ChatPath = "/v1/chat/completions";

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> PostAsync(HttpClient client, string path, string json)
    {
        var response = await client.PostAsync(path, Json(json));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    /// <summary>Posts a streaming request and returns the response once its headers arrive.</summary>
    public static async Task<HttpResponseMessage> PostStreamAsync(HttpClient client, string path, string json, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(json) };
        return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    /// <summary>Reads a whole SSE body: every event's data (in order) and every comment line.</summary>
    public static async Task<SseTranscript> ReadAllEventsAsync(HttpResponseMessage response)
    {
        await using var body = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(body, Encoding.UTF8);
        return await ReadAllEventsAsync(reader);
    }

    /// <summary>Reads the rest of an SSE body, under the <see cref="StreamGuard"/>.</summary>
    public static async Task<SseTranscript> ReadAllEventsAsync(StreamReader reader)
    {
        var transcript = new SseTranscript();
        return await StreamGuard.RunAsync(
            async cancellationToken =>
            {
                await foreach (var item in ReadEventsAsync(reader, cancellationToken))
                {
                    transcript.Items.Add(item);
                }

                return transcript;
            },
            () => $"The end of the stream, after {transcript.Items.Count} events and comments (the last: {transcript.Items.LastOrDefault()?.Data ?? "none"})");
    }

    /// <summary>
    /// Yields <c>data:</c> payloads and <c>:</c> comments as they arrive, checking the framing: each event is one
    /// data line and a blank line.
    /// </summary>
    public static async IAsyncEnumerable<SseItem> ReadEventsAsync(StreamReader reader, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith(':'))
            {
                yield return new SseItem(IsComment: true, line);
                Assert.Equal(string.Empty, await reader.ReadLineAsync(cancellationToken));
                continue;
            }

            Assert.StartsWith("data: ", line);
            yield return new SseItem(IsComment: false, line["data: ".Length..]);
            Assert.Equal(string.Empty, await reader.ReadLineAsync(cancellationToken));
        }
    }

    public static void AssertOpenAiError(JsonElement body, string expectedType, string? expectedParam = null, string? expectedCode = null)
    {
        Assert.Equal(JsonValueKind.Object, body.ValueKind);
        var error = body.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal(expectedType, error.GetProperty("type").GetString());
        Assert.True(error.TryGetProperty("param", out var param), "error.param is missing");
        Assert.True(error.TryGetProperty("code", out var code), "error.code is missing");
        if (expectedParam is not null)
        {
            Assert.Equal(expectedParam, param.GetString());
        }

        if (expectedCode is not null)
        {
            Assert.Equal(expectedCode, code.GetString());
        }
    }

    public static void AssertJsonContentType(HttpResponseMessage response) =>
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);

    public static MediaTypeHeaderValue? ContentType(HttpResponseMessage response) => response.Content.Headers.ContentType;
}

internal sealed record SseItem(bool IsComment, string Data)
{
    public JsonElement Json => JsonDocument.Parse(Data).RootElement.Clone();
}

internal sealed class SseTranscript
{
    public List<SseItem> Items { get; } = [];

    public List<SseItem> Events => Items.Where(i => !i.IsComment).ToList();

    /// <summary>The JSON chunks, without the closing [DONE].</summary>
    public List<JsonElement> Chunks => Events.Where(e => e.Data != "[DONE]").Select(e => e.Json).ToList();
}
