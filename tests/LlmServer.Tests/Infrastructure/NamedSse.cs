using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using LlmServer.Testing;

namespace LlmServer.Tests.Infrastructure;

/// <summary>One server-sent event with an <c>event:</c> name and a JSON <c>data:</c> line.</summary>
internal sealed record NamedEvent(string Name, JsonElement Data);

/// <summary>A line-exact reader for streams that name their events (Anthropic Messages, OpenAI Responses).</summary>
internal static class NamedSse
{
    /// <summary>Yields each event as it arrives, checking the framing: an event line, one data line, a blank line.</summary>
    public static async IAsyncEnumerable<NamedEvent> ReadAsync(HttpResponseMessage response, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(body, Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            // Blank lines, and keep-alive comments while a request waits for its first token on a busy machine.
            if (line.Length == 0 || line.StartsWith(':'))
            {
                continue;
            }

            Assert.StartsWith("event: ", line);
            var data = await reader.ReadLineAsync(cancellationToken);
            Assert.NotNull(data);
            Assert.StartsWith("data: ", data);
            Assert.Equal(string.Empty, await reader.ReadLineAsync(cancellationToken));
            yield return new NamedEvent(line["event: ".Length..], JsonDocument.Parse(data["data: ".Length..]).RootElement.Clone());
        }
    }

    /// <summary>Reads a whole stream, under the <see cref="StreamGuard"/>.</summary>
    public static async Task<List<NamedEvent>> ReadAllAsync(HttpResponseMessage response)
    {
        var events = new List<NamedEvent>();
        return await StreamGuard.RunAsync(
            async cancellationToken =>
            {
                await foreach (var item in ReadAsync(response, cancellationToken))
                {
                    events.Add(item);
                }

                return events;
            },
            () => $"The end of the stream, after {events.Count} events (the last: {events.LastOrDefault()?.Name ?? "none"})");
    }
}
