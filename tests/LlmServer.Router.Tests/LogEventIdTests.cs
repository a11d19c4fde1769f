using System.Reflection;
using Microsoft.Extensions.Logging;

namespace LlmServer.Router.Tests;

/// <summary>
/// Event ids are what log queries and alerts select on: one id must mean one message across all of our assemblies,
/// not only within a class (two classes' <c>LogFailed</c> are two messages). A message without an id gets one derived
/// from its name, and is left out.
/// </summary>
public sealed class LogEventIdTests
{
    private static readonly string[] OurAssemblies =
        ["LlmServer", "LlmServer.Engine", "LlmServer.Router", "LlmServer.Templating", "LlmServer.Extensions.AI", "LlmServer.SemanticKernel"];

    [Fact]
    public void No_event_id_is_given_to_two_different_log_messages()
    {
        var messages = OurAssemblies.Select(Assembly.Load).SelectMany(a => a.GetTypes()).SelectMany(type => type
            .GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly)
            .Select(method => (Method: method, Attribute: method.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(m => m.Attribute is { EventId: >= 0 })
            .Select(m => (Id: m.Attribute!.EventId, Name: m.Attribute.EventName ?? $"{type.FullName}.{m.Method.Name}", Where: $"{type.FullName}.{m.Method.Name}")))
            .ToList();

        var collisions = messages.GroupBy(m => m.Id)
            .Where(g => g.Select(m => m.Name).Distinct(StringComparer.Ordinal).Count() > 1)
            .OrderBy(g => g.Key)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(m => m.Where).Order(StringComparer.Ordinal))}")
            .ToList();

        Assert.True(messages.Count > 50, $"only {messages.Count} log messages with event ids found");
        Assert.True(collisions.Count == 0, "event ids used by different log messages:\n" + string.Join("\n", collisions));
    }
}
