using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace LlmServer.Web.Tests.Infrastructure;

/// <summary>
/// Stands in for the chat hub on the page's WebSocket (SignalR JSON protocol): it keeps sessions the way the server
/// does and answers every message with a fixed text, so a test controls exactly what "the model" says and when.
/// Negotiation still goes to the real server.
/// </summary>
/// <remarks>
/// A gated hub sends each event of an answer (every delta, then <c>done</c>) only when the test calls
/// <see cref="Release"/>, so a test sees each step on the page before the next one exists: streaming is visible by
/// construction, not by hoping the model is slow.
/// </remarks>
public sealed partial class ScriptedHub
{
    private const char RecordSeparator = '\u001e';
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };

    private readonly string[] _pieces;
    private readonly string[] _thoughts;
    private readonly string? _refusal;
    private readonly bool _gated;
    private readonly Func<int, int?> _contextStart;
    private readonly SemaphoreSlim _gate = new(0);
    private readonly Lock _lock = new();
    private readonly List<Session> _sessions = [];
    private readonly List<string> _calls = [];
    private readonly List<(Func<IReadOnlyList<string>, bool> Condition, TaskCompletionSource Reached)> _waiters = [];
    private TaskCompletionSource? _getSessionHold;
    private int _created;
    private volatile bool _stopRequested;

    /// <param name="answer">What every message is answered with.</param>
    /// <param name="pieces">How many deltas the answer arrives in.</param>
    /// <param name="refusal">When set, SendMessage fails with this hub error ("code: text") instead.</param>
    /// <param name="contextStart">
    /// The <c>contextStart</c> of an answer, given the answer's index: what the server reports as the first message
    /// the model saw. Null (the default) reports 0.
    /// </param>
    public ScriptedHub(string answer, int pieces, string? refusal = null, Func<int, int?>? contextStart = null)
        : this(Split(answer, pieces), gated: false, refusal, contextStart)
    {
    }

    private ScriptedHub(string[] pieces, bool gated, string? refusal, Func<int, int?>? contextStart, string[]? thoughts = null)
    {
        _pieces = pieces;
        _thoughts = thoughts ?? [];
        _gated = gated;
        _refusal = refusal;
        _contextStart = contextStart ?? (_ => 0);
    }

    /// <summary>A hub whose answers are these deltas, each sent (and then <c>done</c>) on one <see cref="Release"/>.</summary>
    public static ScriptedHub Gated(params string[] pieces) => new(pieces, gated: true, refusal: null, contextStart: null);

    /// <summary>
    /// A gated hub whose answers think first, as a reasoning model's do: <paramref name="thoughts"/> as <c>reasoning</c>
    /// events, then <paramref name="pieces"/> as deltas, each on one <see cref="Release"/>; the answer is stored with
    /// its reasoning.
    /// </summary>
    public static ScriptedHub GatedThinking(string[] thoughts, params string[] pieces) =>
        new(pieces, gated: true, refusal: null, contextStart: null, thoughts);

    /// <summary>The hub methods the page invoked, in order.</summary>
    public IReadOnlyList<string> Calls
    {
        get
        {
            lock (_lock)
            {
                return [.. _calls];
            }
        }
    }

    /// <summary>Lets the next event of the running answer go out (gated hubs only).</summary>
    public void Release() => _gate.Release();

    /// <summary>Completes once the methods the page invoked (all of them, in order) satisfy the condition.</summary>
    public Task WhenCallsAsync(Func<IReadOnlyList<string>, bool> condition)
    {
        lock (_lock)
        {
            if (condition(_calls))
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((condition, reached));
            return reached.Task;
        }
    }

    /// <summary>Completes once the page invoked these methods, in this order (others between them), after the first <paramref name="skip"/> calls.</summary>
    public Task WhenCalledInOrderAsync(int skip, params string[] targets) =>
        WhenCallsAsync(calls =>
        {
            var next = 0;
            foreach (var call in calls.Skip(skip))
            {
                if (next < targets.Length && call == targets[next])
                {
                    next++;
                }
            }

            return next == targets.Length;
        });

    /// <summary>
    /// The reply to the next GetSession is the session as it is when asked, but it goes out only when the returned
    /// action is called: a slow reply that arrives after newer ones.
    /// </summary>
    public Action HoldNextGetSession()
    {
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _getSessionHold = hold;
        }

        return hold.SetResult;
    }

    /// <summary>
    /// A session made elsewhere with these messages (user and assistant in turn, each answer finished), whose
    /// answer may still be running on another replica: it says so, and resuming it finds nothing to follow here.
    /// </summary>
    public string AddSession(string title, bool generating, params string[] messages)
    {
        lock (_lock)
        {
            var now = DateTimeOffset.UtcNow.ToString("O");
            var session = new Session(new JsonObject
            {
                ["id"] = $"scripted-{++_created}",
                ["title"] = title,
                ["systemPrompt"] = null,
                ["settings"] = new JsonObject(),
                ["createdAt"] = now,
                ["updatedAt"] = now,
                ["messageCount"] = 0,
                ["generating"] = generating,
            });
            _sessions.Add(session);
            AddMessages(session, messages);
            return session.Id;
        }
    }

    /// <summary>Messages another client added to a session (user and assistant in turn, each answer finished).</summary>
    public void AddMessages(string sessionId, params string[] messages)
    {
        lock (_lock)
        {
            AddMessages(_sessions.Single(s => s.Id == sessionId), messages);
        }
    }

    /// <summary>A session another client deleted.</summary>
    public void RemoveSession(string sessionId)
    {
        lock (_lock)
        {
            _sessions.RemoveAll(s => s.Id == sessionId);
        }
    }

    private static void AddMessages(Session session, string[] messages)
    {
        foreach (var content in messages)
        {
            if (session.Messages.Count % 2 == 0)
            {
                session.Add("user", content);
            }
            else
            {
                session.Add("assistant", content, new JsonObject
                {
                    ["promptTokens"] = 12,
                    ["cachedTokens"] = 0,
                    ["completionTokens"] = 3,
                    ["finishReason"] = "stop",
                    ["contextStart"] = 0,
                    ["reasoningTokens"] = 0,
                });
            }
        }
    }

    public Task RouteAsync(IPage page) => page.RouteWebSocketAsync(HubPath(), socket => socket.OnMessage(frame => Receive(socket, frame.Text ?? string.Empty)));

    [GeneratedRegex("/hubs/chat")]
    private static partial Regex HubPath();

    private static string[] Split(string answer, int pieces)
    {
        var size = (answer.Length + pieces - 1) / pieces;
        return [.. Enumerable.Range(0, pieces).Select(i => i * size).Where(at => at < answer.Length).Select(at => answer[at..Math.Min(answer.Length, at + size)])];
    }

    private void Receive(IWebSocketRoute socket, string text)
    {
        foreach (var record in text.Split(RecordSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var message = JsonNode.Parse(record)!.AsObject();
            if (message.ContainsKey("protocol"))
            {
                Send(socket, "{}");
                continue;
            }

            var target = message["target"]?.GetValue<string>();
            var invocationId = message["invocationId"]?.GetValue<string>();
            var arguments = message["arguments"]?.AsArray() ?? [];
            if (message["type"]?.GetValue<int>() == 6)
            {
                // A ping: answered, as the server's own keep-alive would, so a long test is not timed out by the client.
                Send(socket, "{\"type\":6}");
                continue;
            }

            if (target is null)
            {
                continue; // stream completions from the client
            }

            lock (_lock)
            {
                _calls.Add(target);
                Invoke(socket, target, invocationId, arguments);
                foreach (var waiter in _waiters.Where(w => w.Condition(_calls)).ToList())
                {
                    _waiters.Remove(waiter);
                    waiter.Reached.SetResult();
                }
            }
        }
    }

    private void Invoke(IWebSocketRoute socket, string target, string? invocationId, JsonArray arguments)
    {
        switch (target)
        {
            case "ListSessions":
                Complete(socket, invocationId, new JsonArray([.. _sessions.AsEnumerable().Reverse().Select(s => s.Info.DeepClone())]));
                break;
            case "CreateSession":
            {
                var request = arguments[0]?.AsObject();
                var now = DateTimeOffset.UtcNow.ToString("O");
                var created = new Session(new JsonObject
                {
                    ["id"] = $"scripted-{++_created}",
                    ["title"] = request?["title"]?.GetValue<string>() ?? "New chat",
                    ["systemPrompt"] = request?["systemPrompt"]?.DeepClone(),
                    ["settings"] = request?["settings"]?.DeepClone() ?? new JsonObject(),
                    ["createdAt"] = now,
                    ["updatedAt"] = now,
                    ["messageCount"] = 0,
                    ["generating"] = false,
                });
                _sessions.Add(created);
                Complete(socket, invocationId, created.Info.DeepClone());
                break;
            }

            case "GetSession":
                if (Find(arguments) is { } found)
                {
                    var detail = new JsonObject { ["info"] = found.Info.DeepClone(), ["messages"] = new JsonArray([.. found.Messages.Select(m => m.DeepClone())]) };
                    if (_getSessionHold is { } hold)
                    {
                        _getSessionHold = null;
                        _ = hold.Task.ContinueWith(
                            _ =>
                            {
                                lock (_lock)
                                {
                                    Complete(socket, invocationId, detail);
                                }
                            },
                            TaskScheduler.Default);
                    }
                    else
                    {
                        Complete(socket, invocationId, detail);
                    }
                }
                else
                {
                    Fail(socket, invocationId, "session_not_found: no such session");
                }

                break;
            case "DeleteSession":
                _sessions.RemoveAll(s => s.Id == arguments[0]?.GetValue<string>());
                Complete(socket, invocationId, null);
                break;
            case "StopGeneration":
                _stopRequested = true;
                _gate.Release(); // the answer ends at once, as a stopped one does
                Complete(socket, invocationId, null);
                break;
            case "ResumeStream":
                // Sessions here run no answer of their own: one said to be running runs on another replica.
                Fail(socket, invocationId, "no_generation: no answer is running in this session");
                break;
            case "SendMessage" when _refusal is not null:
                Fail(socket, invocationId, _refusal);
                break;
            case "SendMessage" when Find(arguments) is { } session:
                session.Add("user", arguments[1]!.GetValue<string>());
                _stopRequested = false;
                _ = Task.Run(() => StreamAsync(socket, invocationId!, session));
                break;
            default:
                if (invocationId is not null)
                {
                    Fail(socket, invocationId, $"internal_error: the scripted hub has no {target}");
                }

                break;
        }
    }

    private Session? Find(JsonArray arguments) => _sessions.Find(s => s.Id == arguments[0]?.GetValue<string>());

    private async Task StreamAsync(IWebSocketRoute socket, string invocationId, Session session)
    {
        long seq = 0;
        var reasoning = string.Empty;
        var reasoningTokens = 0;
        foreach (var thought in _thoughts)
        {
            await WaitForReleaseAsync();
            if (_stopRequested)
            {
                break;
            }

            reasoning += thought;
            reasoningTokens++;
            lock (_lock)
            {
                Item(socket, invocationId, new JsonObject { ["seq"] = ++seq, ["type"] = "reasoning", ["text"] = thought });
            }
        }

        var text = string.Empty;
        foreach (var piece in _stopRequested ? [] : _pieces)
        {
            await WaitForReleaseAsync();
            if (_stopRequested)
            {
                break;
            }

            text += piece;
            lock (_lock)
            {
                Item(socket, invocationId, new JsonObject { ["seq"] = ++seq, ["type"] = "delta", ["text"] = piece });
            }
        }

        if (!_stopRequested)
        {
            await WaitForReleaseAsync();
        }

        lock (_lock)
        {
            var finishReason = _stopRequested ? "cancelled" : "stop";
            var index = session.Messages.Count;
            var contextStart = _contextStart(index);
            // One token an event: completionTokens counts the reasoning and delta events, reasoningTokens the reasoning ones.
            var usage = new JsonObject { ["promptTokens"] = 12, ["cachedTokens"] = 0, ["completionTokens"] = seq, ["reasoningTokens"] = reasoningTokens };
            session.Add("assistant", text, new JsonObject
            {
                ["promptTokens"] = 12,
                ["cachedTokens"] = 0,
                ["completionTokens"] = seq,
                ["finishReason"] = finishReason,
                ["contextStart"] = contextStart,
                ["reasoning"] = reasoning.Length > 0 ? reasoning : null,
                ["reasoningTokens"] = reasoningTokens,
            });
            Item(socket, invocationId, new JsonObject
            {
                ["seq"] = ++seq,
                ["type"] = "done",
                ["finishReason"] = finishReason,
                ["usage"] = usage,
                ["timings"] = new JsonObject { ["queuedMs"] = 1.0, ["prefillMs"] = 2.0, ["decodeMs"] = 100.0, ["tokensPerSecond"] = 90.0 },
                ["contextStart"] = contextStart,
            });
            Send(socket, new JsonObject { ["type"] = 3, ["invocationId"] = invocationId });
        }
    }

    private Task WaitForReleaseAsync() => _gated ? _gate.WaitAsync() : Task.CompletedTask;

    private static void Item(IWebSocketRoute socket, string invocationId, JsonObject item) =>
        Send(socket, new JsonObject { ["type"] = 2, ["invocationId"] = invocationId, ["item"] = item });

    private static void Complete(IWebSocketRoute socket, string? invocationId, JsonNode? result) =>
        Send(socket, new JsonObject { ["type"] = 3, ["invocationId"] = invocationId, ["result"] = result });

    private static void Fail(IWebSocketRoute socket, string? invocationId, string error) =>
        Send(socket, new JsonObject { ["type"] = 3, ["invocationId"] = invocationId, ["error"] = error });

    private static void Send(IWebSocketRoute socket, JsonObject message) => Send(socket, message.ToJsonString(Compact));

    private static void Send(IWebSocketRoute socket, string json) => socket.Send(json + RecordSeparator);

    /// <summary>A stored session: its info as the hub returns it, and its messages.</summary>
    private sealed class Session(JsonObject info)
    {
        public JsonObject Info { get; } = info;

        public List<JsonObject> Messages { get; } = [];

        public string Id => Info["id"]!.GetValue<string>();

        public void Add(string role, string content, JsonObject? extra = null)
        {
            var message = new JsonObject
            {
                ["index"] = Messages.Count,
                ["role"] = role,
                ["content"] = content,
                ["createdAt"] = DateTimeOffset.UtcNow.ToString("O"),
            };
            foreach (var (name, value) in extra ?? [])
            {
                message[name] = value?.DeepClone();
            }

            Messages.Add(message);
            Info["messageCount"] = Messages.Count;
        }
    }
}
