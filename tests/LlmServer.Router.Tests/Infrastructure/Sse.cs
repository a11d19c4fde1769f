using System.Text;

namespace LlmServer.Router.Tests.Infrastructure;

internal static class Sse
{
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The data of the next server-sent event, or null at the end of the stream.</summary>
    public static async Task<string?> ReadEventAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                return line["data:".Length..].Trim();
            }
        }

        return null;
    }

    public static async Task<List<string>> ReadAllAsync(StreamReader reader)
    {
        var events = new List<string>();
        while (await ReadEventAsync(reader) is { } data)
        {
            events.Add(data);
        }

        return events;
    }
}
