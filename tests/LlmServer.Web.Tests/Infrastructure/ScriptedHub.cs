using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace LlmServer.Web.Tests.Infrastructure;

/// <summary>
/// Stands in for the chat hub on the page's WebSocket (SignalR JSON protocol) and answers every message with a
/// fixed text, so a test controls exactly what "the model" says. Negotiation still goes to the real server.
/// </summary>
public sealed partial class ScriptedHub
{
    private const char RecordSeparator = '\u001e';
    private readonly string _answer;
    private readonly int _pieces;
    private readonly JsonObject _session;
    private readonly List<string> _userMessages = [];

    private readonly string? _refusal;

    /// <param name="answer">What every message is answered with.</param>
    /// <param name="pieces">How many deltas the answer arrives in.</param>
    /// <param name="refusal">When set, SendMessage fails with this hub error ("code: text") instead.</param>
    public ScriptedHub(string answer, int pieces, string? refusal = null)
    {
        _answer = answer;
        _pieces = pieces;
        _refusal = refusal;
        var now = DateTimeOffset.UtcNow.ToString("O");
        _session = new JsonObject
        {
            ["id"] = "scripted",
            ["title"] = "Scripted",
            ["systemPrompt"] = null,
            ["settings"] = new JsonObject(),
            ["createdAt"] = now,
            ["updatedAt"] = now,
            ["messageCount"] = 0,
            ["generating"] = false,
        };
    }

    public Task RouteAsync(IPage page) => page.RouteWebSocketAsync(HubPath(), socket => socket.OnMessage(frame => Receive(socket, frame.Text ?? string.Empty)));

    [GeneratedRegex("/hubs/chat")]
    private static partial Regex HubPath();

    private void Receive(IWebSocketRoute socket, string text)
    {
        foreach (var record in text.Split(RecordSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var message = JsonNode.Parse(record)!.AsObject();
            if (message.ContainsKey("protocol"))
            {
                socket.Send("{}" + RecordSeparator);
                continue;
            }

            var invocationId = message["invocationId"]?.GetValue<string>();
            var arguments = message["arguments"]?.AsArray();
            switch (message["target"]?.GetValue<string>())
            {
                case "ListSessions":
                    Complete(socket, invocationId, new JsonArray(_session.DeepClone()));
                    break;
                case "CreateSession":
                    Complete(socket, invocationId, _session.DeepClone());
                    break;
                case "GetSession":
                    Complete(socket, invocationId, Detail());
                    break;
                case "SendMessage" when _refusal is not null:
                    Send(socket, new JsonObject { ["type"] = 3, ["invocationId"] = invocationId, ["error"] = _refusal });
                    break;
                case "SendMessage":
                    _userMessages.Add(arguments![1]!.GetValue<string>());
                    Stream(socket, invocationId!);
                    break;
                default:
                    break; // pings and anything the page does not need an answer to
            }
        }
    }

    private void Stream(IWebSocketRoute socket, string invocationId)
    {
        var size = (_answer.Length + _pieces - 1) / _pieces;
        long seq = 0;
        for (var at = 0; at < _answer.Length; at += size)
        {
            Item(socket, invocationId, new JsonObject { ["seq"] = ++seq, ["type"] = "delta", ["text"] = _answer[at..Math.Min(_answer.Length, at + size)] });
        }

        Item(socket, invocationId, new JsonObject
        {
            ["seq"] = ++seq,
            ["type"] = "done",
            ["finishReason"] = "stop",
            ["usage"] = new JsonObject { ["promptTokens"] = 12, ["cachedTokens"] = 0, ["completionTokens"] = _pieces },
            ["timings"] = new JsonObject { ["queuedMs"] = 1.0, ["prefillMs"] = 2.0, ["decodeMs"] = 100.0, ["tokensPerSecond"] = 90.0 },
        });
        Send(socket, new JsonObject { ["type"] = 3, ["invocationId"] = invocationId });
    }

    private JsonObject Detail()
    {
        var messages = new JsonArray();
        var now = DateTimeOffset.UtcNow.ToString("O");
        foreach (var text in _userMessages)
        {
            messages.Add(new JsonObject { ["index"] = messages.Count, ["role"] = "user", ["content"] = text, ["createdAt"] = now });
            messages.Add(new JsonObject
            {
                ["index"] = messages.Count,
                ["role"] = "assistant",
                ["content"] = _answer,
                ["createdAt"] = now,
                ["promptTokens"] = 12,
                ["cachedTokens"] = 0,
                ["completionTokens"] = _pieces,
                ["finishReason"] = "stop",
            });
        }

        return new JsonObject { ["info"] = _session.DeepClone(), ["messages"] = messages };
    }

    private static void Item(IWebSocketRoute socket, string invocationId, JsonObject item) =>
        Send(socket, new JsonObject { ["type"] = 2, ["invocationId"] = invocationId, ["item"] = item });

    private static void Complete(IWebSocketRoute socket, string? invocationId, JsonNode result) =>
        Send(socket, new JsonObject { ["type"] = 3, ["invocationId"] = invocationId, ["result"] = result });

    private static void Send(IWebSocketRoute socket, JsonObject message) =>
        socket.Send(message.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + RecordSeparator);
}
