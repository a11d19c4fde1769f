using System.Text;
using LlmServer.Testing;

namespace LlmServer.Router.Tests.Infrastructure;

internal static class Sse
{
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static async Task<List<string>> ReadAllAsync(StreamReader reader)
    {
        var events = new List<string>();
        while (await StreamGuard.NextDataAsync(reader) is { } data)
        {
            events.Add(data);
        }

        return events;
    }
}
