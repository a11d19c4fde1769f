using System.Collections.Concurrent;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Operations;
using LlmServer.Sessions;
using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using Microsoft.AspNetCore.SignalR.Client;
using static LlmServer.Tests.OpenAi.OpenAiHttp;
using static LlmServer.Tests.Sessions.HubTestExtensions;

namespace LlmServer.Tests.Sessions;

/// <summary>
/// A sessions server with a reasoning model's chat template and <see cref="ScriptedOutput"/>: a <c>say:</c> message
/// makes the tiny model write crafted output, thinking included. It keeps the prompt the engine rendered for each
/// session's turns; its decode <see cref="Gate"/> (open unless a test closes it) holds a generation for a stop.
/// </summary>
public abstract class ReasoningSessionServerFixture(string template) : IAsyncLifetime
{
    private SessionTestServer? _server;

    public SessionTestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    internal DecodeGate Gate { get; } = new();

    /// <summary>The prompts of each session's turns, in order.</summary>
    internal ConcurrentDictionary<string, ConcurrentQueue<string>> Prompts { get; } = new(StringComparer.Ordinal);

    public async Task InitializeAsync() => _server = await SessionTestServer.StartAsync(
        null,
        services =>
        {
            Gate.Install(services);
            ScriptedOutput.Install(services);
            OperationsExtensions.DecorateTextGenerator(services, (_, engine) => new PromptRecorder(engine, Prompts));
        },
        "--Scheduler:Slots=2",
        "--Scheduler:ContextSize=4096",
        "--Model:ChatTemplateFile=" + Path.Combine(ChatTemplateFixtures.Root, "templates", template));

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
            _server.DeleteFiles();
        }
    }

    private sealed class PromptRecorder(ITextGenerator inner, ConcurrentDictionary<string, ConcurrentQueue<string>> prompts) : DelegatingTextGenerator(inner)
    {
        public override GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default)
        {
            if (request.SessionKey is { } session)
            {
                prompts.GetOrAdd(session, _ => new ConcurrentQueue<string>()).Enqueue(RenderPrompt(request));
            }

            return base.Submit(request, cancellationToken);
        }
    }
}

/// <summary>Qwen3's template: its model opens the <c>&lt;think&gt;</c> block itself.</summary>
public sealed class Qwen3SessionServerFixture() : ReasoningSessionServerFixture("Qwen-Qwen3-0.6B.jinja");

/// <summary>DeepSeek-R1's distill template: its generation prompt opens the <c>&lt;think&gt;</c> block.</summary>
public sealed class DeepSeekR1SessionServerFixture() : ReasoningSessionServerFixture("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja");

[Collection(SessionsCollection.Name)]
/// <summary>A reasoning model's thinking in sessions: streamed and stored apart from the answer, and never fed back.</summary>
public sealed class SessionReasoningTests(Qwen3SessionServerFixture fixture) : IClassFixture<Qwen3SessionServerFixture>
{
    /// <summary>Qwen3's shape: the block, blank lines, the answer.</summary>
    private const string Thinking = "<think>\nThe user greets me.\n</think>\n\nHello there.";
    private const string Thought = "The user greets me.";
    private const string Answer = "Hello there.";

    private readonly SessionTestServer _server = fixture.Server;

    [Fact]
    public async Task The_hub_streams_the_thinking_as_reasoning_events_before_the_answer_and_stores_it_apart()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 80);

        var events = new List<JsonElement>();
        await foreach (var item in hub.StreamAsync<JsonElement>("SendMessage", session.Id, ScriptedOutput.Prefix + Thinking))
        {
            events.Add(item);
        }

        // Reasoning events (seq, type, text: nothing written as null), then the answer's deltas, then done.
        var kinds = events.Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Equal("done", kinds[^1]);
        var firstDelta = kinds.IndexOf(ChatStreamEvent.DeltaType);
        Assert.True(firstDelta > 0, $"event kinds: {string.Join(", ", kinds)}");
        Assert.All(kinds.Take(firstDelta), kind => Assert.Equal(ChatStreamEvent.ReasoningType, kind));
        Assert.All(kinds.Skip(firstDelta).SkipLast(1), kind => Assert.Equal(ChatStreamEvent.DeltaType, kind));
        Assert.All(events.SkipLast(1), e => Assert.Equal(["seq", "type", "text"], e.EnumerateObject().Select(p => p.Name)));
        Assert.Equal(Thought, TextOf(events.Take(firstDelta)));
        Assert.Equal(Answer, TextOf(events.Skip(firstDelta).SkipLast(1)));
        Assert.Equal("stop", events[^1].GetProperty("finishReason").GetString());

        // done.usage says how many of the completion tokens went to the thinking (the block and its tags), as stored.
        var usage = events[^1].GetProperty("usage");
        var completionTokens = usage.GetProperty("completionTokens").GetInt32();
        var reasoningTokens = usage.GetProperty("reasoningTokens").GetInt32();
        Assert.InRange(reasoningTokens, 1, completionTokens - 1);

        var messages = (await hub.GetAsync(session.Id)).Messages;
        Assert.Null(messages[0].Reasoning);
        Assert.Null(messages[0].ReasoningTokens);
        Assert.Equal((Answer, Thought, "stop"), (messages[1].Content, messages[1].Reasoning, messages[1].FinishReason));
        Assert.Equal((completionTokens, reasoningTokens), (messages[1].CompletionTokens, messages[1].ReasoningTokens));

        // The REST mirror lists it the same way.
        using var detail = JsonDocument.Parse(await _server.Server.Client.GetStringAsync(new Uri($"/api/sessions/{session.Id}", UriKind.Relative)));
        var listed = detail.RootElement.GetProperty("messages")[1];
        Assert.Equal((Answer, Thought), (listed.GetProperty("content").GetString(), listed.GetProperty("reasoning").GetString()));
        Assert.Equal(reasoningTokens, listed.GetProperty("reasoningTokens").GetInt32());
    }

    [Fact]
    public async Task The_rest_mirror_streams_reasoning_events_too()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 80);

        using var content = new StringContent(JsonSerializer.Serialize(new { text = ScriptedOutput.Prefix + Thinking }), System.Text.Encoding.UTF8, "application/json");
        using var response = await _server.Server.Client.PostAsync(new Uri($"/api/sessions/{session.Id}/messages", UriKind.Relative), content);
        var body = await response.Content.ReadAsStringAsync();
        var events = body.Split('\n').Where(line => line.StartsWith("data: ", StringComparison.Ordinal)).Select(line => JsonElement.Parse(line[6..])).ToList();

        Assert.Equal(ChatStreamEvent.ReasoningType, events[0].GetProperty("type").GetString());
        Assert.Equal(["seq", "type", "text"], events[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal(Thought, TextOf(events.Where(e => e.GetProperty("type").GetString() == ChatStreamEvent.ReasoningType)));
        Assert.Equal(Answer, TextOf(events.Where(e => e.GetProperty("type").GetString() == ChatStreamEvent.DeltaType)));
        Assert.Equal("done", events[^1].GetProperty("type").GetString());
        var usage = events[^1].GetProperty("usage");
        Assert.InRange(usage.GetProperty("reasoningTokens").GetInt32(), 1, usage.GetProperty("completionTokens").GetInt32() - 1);
    }

    [Fact]
    public async Task A_block_holding_only_whitespace_streams_no_reasoning_but_counts_its_tokens()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 80);

        var events = await hub.Send(session.Id, ScriptedOutput.Prefix + "<think>\n\n").CollectAsync();

        var done = AssertWellFormed(events);
        Assert.DoesNotContain(events, e => e.Type is ChatStreamEvent.ReasoningType or ChatStreamEvent.DeltaType);
        Assert.Equal(done.Usage!.CompletionTokens, done.Usage.ReasoningTokens);
        var answer = (await hub.GetAsync(session.Id)).Messages[1];
        Assert.Equal((string.Empty, (string?)null, (int?)done.Usage.ReasoningTokens), (answer.Content, answer.Reasoning, answer.ReasoningTokens));
    }

    [Theory]
    [InlineData("<think>\n\n</think>", false)]
    [InlineData("<think>\n\n</think>\n\nHi.", true)]
    [InlineData("<think>\nHm.\n</think>", false)]
    [InlineData("<think>\nHm.\n</think>\n\nHi.", true)]
    public async Task Reasoning_tokens_are_the_block_with_its_tags_in_done_and_stored(string output, bool answered)
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 80);

        var done = AssertWellFormed(await hub.Send(session.Id, ScriptedOutput.Prefix + output).CollectAsync());

        // Counted as chat's reasoning_tokens: through the closing tag, so all completion tokens when no answer follows.
        var usage = done.Usage!;
        Assert.InRange(usage.ReasoningTokens, 1, answered ? usage.CompletionTokens - 1 : usage.CompletionTokens);
        Assert.True(answered || usage.ReasoningTokens == usage.CompletionTokens, $"{usage.ReasoningTokens} of {usage.CompletionTokens} completion tokens are reasoning");
        Assert.Equal(usage.ReasoningTokens, (await hub.GetAsync(session.Id)).Messages[1].ReasoningTokens);
    }

    [Fact]
    public async Task A_stop_while_thinking_counts_every_completion_token_as_reasoning_and_stores_it()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 400);
        var events = new List<ChatStreamEvent>();

        // Far more thinking than the gate lets through: the stop comes while the block is open.
        fixture.Gate.CloseAfter(40);
        try
        {
            await hub.Send(session.Id, ScriptedOutput.Prefix + "<think>\nHm. " + string.Concat(Enumerable.Repeat("I think it over once more. ", 20))).ReadEachAsync(async (item, cancellationToken) =>
            {
                events.Add(item);
                if (events.Count == 1)
                {
                    // The stop has reached the engine when the call returns.
                    await hub.InvokeAsync("StopGeneration", session.Id, cancellationToken);
                    fixture.Gate.Open();
                }
            });
        }
        finally
        {
            fixture.Gate.Open();
        }

        var done = AssertWellFormed(events);
        Assert.Equal(ChatStreamEvent.ReasoningType, events[0].Type);
        Assert.DoesNotContain(events, e => e.Type == ChatStreamEvent.DeltaType);
        Assert.Equal("cancelled", done.FinishReason);
        var usage = done.Usage!;
        Assert.InRange(usage.CompletionTokens, 1, 40);
        Assert.Equal(usage.CompletionTokens, usage.ReasoningTokens);
        var answer = (await hub.GetAsync(session.Id)).Messages[1];
        Assert.Equal(("cancelled", (int?)usage.CompletionTokens, (int?)usage.ReasoningTokens), (answer.FinishReason, answer.CompletionTokens, answer.ReasoningTokens));
    }

    [Fact]
    public void An_error_with_a_completion_carries_its_reasoning_tokens()
    {
        var failed = new GenerationCompleted(0, FinishReason.Error, new GenerationUsage(10, 0, 5) { ReasoningTokens = 3 }, new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero), new GenerationError(GenerationErrorCode.Internal, "boom"));

        var ending = SessionWire.Ending(7, failed, failure: null, contextStart: 0);

        Assert.Equal(ChatStreamEvent.ErrorType, ending.Type);
        Assert.Equal(new ChatUsage(10, 0, 5, 3), ending.Usage);
    }

    [Fact]
    public async Task A_replay_from_a_seq_inside_the_thinking_gets_the_rest_of_it_then_the_answer()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 80);
        var sent = await hub.Send(session.Id, ScriptedOutput.Prefix + Thinking).CollectAsync();
        AssertWellFormed(sent);
        var reasoning = sent.Where(e => e.Type == ChatStreamEvent.ReasoningType).ToList();
        Assert.True(reasoning.Count >= 2, $"{reasoning.Count} reasoning events");

        // A client that saw only the first reasoning event: the rest come in order, kinds kept, then the answer.
        var resumed = await hub.StreamAsync<ChatStreamEvent>("ResumeStream", session.Id, reasoning[0].Seq).CollectAsync();

        AssertWellFormed(resumed, firstSeq: reasoning[0].Seq + 1);
        Assert.Equal(sent.Skip(1), resumed);
        Assert.Equal(Thought, reasoning[0].Text + string.Concat(resumed.Where(e => e.Type == ChatStreamEvent.ReasoningType).Select(e => e.Text)));
        var firstDelta = resumed.FindIndex(e => e.Type == ChatStreamEvent.DeltaType);
        Assert.True(firstDelta > 0 && resumed.Take(firstDelta).All(e => e.Type == ChatStreamEvent.ReasoningType), string.Join(", ", resumed.Select(e => e.Type)));
        Assert.Equal(Answer, string.Concat(resumed.Where(e => e.Type == ChatStreamEvent.DeltaType).Select(e => e.Text)));
    }

    [Fact]
    public async Task The_next_turn_leaves_the_thinking_out_of_its_prompt_and_reuses_the_kv_up_to_where_it_began()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 80);

        var first = AssertWellFormed(await hub.Send(session.Id, ScriptedOutput.Prefix + Thinking).CollectAsync()).Usage!;
        var second = AssertWellFormed(await hub.Send(session.Id, ScriptedOutput.Prefix + "Fine.").CollectAsync()).Usage!;
        var third = AssertWellFormed(await hub.Send(session.Id, ScriptedOutput.Prefix + "Bye.").CollectAsync()).Usage!;

        // The answer is in the next prompt as its content alone, after the first prompt's text, which the KV holds.
        var prompts = fixture.Prompts[session.Id].ToArray();
        Assert.Equal(3, prompts.Length);
        Assert.StartsWith(prompts[0], prompts[1], StringComparison.Ordinal);
        var afterFirstPrompt = prompts[1][prompts[0].Length..];
        Assert.StartsWith(Answer, afterFirstPrompt, StringComparison.Ordinal);
        Assert.DoesNotContain(Thought, afterFirstPrompt, StringComparison.Ordinal);
        Assert.DoesNotContain("<think>", afterFirstPrompt, StringComparison.Ordinal);

        // An answer without thinking has no reasoning tokens.
        Assert.InRange(first.ReasoningTokens, 1, first.CompletionTokens - 1);
        Assert.Equal(0, second.ReasoningTokens);
        Assert.Equal(0, (await hub.GetAsync(session.Id)).Messages[3].ReasoningTokens);

        // Turn 2 reuses turn 1's KV up to where the thinking began (its prompt); turn 3 all of turn 2's (no thinking)
        // but the last sampled token, which was never decoded.
        Assert.True(second.CachedTokens >= first.PromptTokens, $"turn 2 cached {second.CachedTokens} of turn 1's prompt {first.PromptTokens}");
        Assert.True(
            third.CachedTokens >= second.PromptTokens + second.CompletionTokens - 1,
            $"turn 3 cached {third.CachedTokens} of turn 2's {second.PromptTokens} + {second.CompletionTokens}");
    }

    private static string TextOf(IEnumerable<JsonElement> events) => string.Concat(events.Select(e => e.GetProperty("text").GetString()));
}

[Collection(SessionsCollection.Name)]
/// <summary>
/// A template whose generation prompt opens the <c>&lt;think&gt;</c> block (DeepSeek-R1's distills, QwQ): the previous
/// prompt ends in that opening, which the next prompt's history does not repeat.
/// </summary>
public sealed class SessionReasoningOpenBlockTests(DeepSeekR1SessionServerFixture fixture) : IClassFixture<DeepSeekR1SessionServerFixture>
{
    private const string GenerationPrompt = "<｜Assistant｜><think>\n";

    private readonly SessionTestServer _server = fixture.Server;

    [Fact]
    public async Task The_next_turn_reuses_the_kv_only_as_far_as_its_tokens_agree_with_the_previous_prompt()
    {
        await using var hub = await _server.ConnectAsync();
        var session = await hub.CreateAsync(maxTokens: 8);

        // The model writes freely (a scripted answer's grammar would hold from the first token, which the engine takes
        // for an answer, not thinking): all it writes is inside the block the prompt opened, so it is reasoning.
        var first = AssertWellFormed(await hub.Send(session.Id, "Once upon a time").CollectAsync()).Usage!;
        var second = AssertWellFormed(await hub.Send(session.Id, "Tell me more").CollectAsync()).Usage!;
        var answer = (await hub.GetAsync(session.Id)).Messages[1];
        Assert.Equal(string.Empty, answer.Content);

        var prompts = fixture.Prompts[session.Id].ToArray();
        Assert.EndsWith(GenerationPrompt, prompts[0], StringComparison.Ordinal);
        var beforeGenerationPrompt = prompts[0][..^GenerationPrompt.Length];
        Assert.StartsWith(beforeGenerationPrompt + "<｜Assistant｜>" + answer.Content + "<｜end▁of▁sentence｜>", prompts[1], StringComparison.Ordinal);

        // No text the KV holds ends where the next prompt parts from it, so the prompt is tokenized whole and the KV
        // is reused as far as the two prompts' tokens agree: past the previous prompt's history, short of its <think>.
        var previous = await TokensAsync(prompts[0]);
        var next = await TokensAsync(prompts[1]);
        Assert.Equal(first.PromptTokens, previous.Length);
        Assert.Equal(previous.AsSpan().CommonPrefixLength(next), second.CachedTokens);
        Assert.InRange(second.CachedTokens, (await TokensAsync(beforeGenerationPrompt)).Length, first.PromptTokens - 1);
    }

    private async Task<int[]> TokensAsync(string text)
    {
        var (_, body, _) = await PostAsync(_server.Server.Client, "/tokenize", JsonSerializer.Serialize(new { content = text, add_special = true, parse_special = true }));
        return [.. body.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];
    }
}
