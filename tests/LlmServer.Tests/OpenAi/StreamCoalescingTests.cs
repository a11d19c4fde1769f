using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;
using LlmServer.Operations;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace LlmServer.Tests.OpenAi;

/// <summary>
/// A client that reads slowly: the response pipe lets a flush finish only when the test reads, so while the writer
/// waits the scheduler's events pile up, and the writer must send them as one merged chunk. Every wait is for an
/// event (bytes on the pipe), never for time.
/// </summary>
public sealed class StreamCoalescingTests
{
    [Fact]
    public async Task A_slow_reader_gets_fewer_merged_chunks_with_the_same_text_and_intact_finish_and_usage()
    {
        // The writer sends the role chunk and waits in its flush: the client has not read anything yet.
        using var chat = new ChatStream(promptTokens: 5, includeUsage: true);
        var (client, publisher, queue, streaming) = (chat.Client, chat.Publisher, chat.Queue, chat.Streaming);
        foreach (var text in new[] { "Once", " upon", " a" })
        {
            queue.Write(new TextDelta(0, text, 1, null));
        }

        publisher.Publish();
        var events = await client.ReadUntilAsync(e => e.Any(c => Content(c) == "Once upon a"));

        // Two more tokens while the writer waits in the flush of that chunk, then the finish.
        queue.Write(new TextDelta(0, " time", 1, null));
        publisher.Publish();
        queue.Write(new TextDelta(0, ",", 1, null));
        queue.Write(new GenerationCompleted(0, FinishReason.Length, new GenerationUsage(5, 0, 5), new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero)));
        queue.Complete();
        publisher.Publish();
        events = await client.ReadUntilAsync(e => e.Contains("[DONE]"));
        await streaming;

        var chunks = events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        var contents = chunks.Select(Content).Where(t => !string.IsNullOrEmpty(t)).ToList();
        Assert.Equal("Once upon a time,", string.Concat(contents));
        Assert.True(contents.Count < 5, $"5 tokens came as {contents.Count} chunks: {string.Join(" | ", contents)}");
        Assert.Equal("Once upon a", contents[0]);

        var finish = Assert.Single(chunks, c => c.GetProperty("choices").GetArrayLength() == 1 && c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind == JsonValueKind.String);
        Assert.Equal("length", finish.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var usage = Assert.Single(chunks, c => c.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object);
        Assert.Equal(5, usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(5, usage.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal("[DONE]", events[^1]);
    }

    [Fact]
    public async Task A_slow_reader_gets_reasoning_merged_apart_from_the_answer()
    {
        // Everything waits while the writer is in the flush of its role chunk: the client has not read anything yet.
        using var chat = new ChatStream(promptTokens: 5, includeUsage: true);
        var (client, publisher, queue, streaming) = (chat.Client, chat.Publisher, chat.Queue, chat.Streaming);
        foreach (var text in new[] { "Think", "ing", "." })
        {
            queue.Write(new ReasoningDelta(0, text, 1, null));
        }

        queue.Write(new TextDelta(0, "Hi", 1, null));
        queue.Write(new TextDelta(0, " there", 1, null));
        queue.Write(new GenerationCompleted(0, FinishReason.Stop, new GenerationUsage(5, 0, 5) { ReasoningTokens = 3 }, new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero)));
        queue.Complete();
        publisher.Publish();
        var events = await client.ReadUntilAsync(e => e.Contains("[DONE]"));
        await streaming;

        var deltas = events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement)
            .Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("delta")).ToList();
        Assert.Equal(["Thinking."], deltas.Where(d => d.TryGetProperty("reasoning_content", out _)).Select(d => d.GetProperty("reasoning_content").GetString()));
        Assert.Equal(["Hi there"], deltas.Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : null).Where(t => !string.IsNullOrEmpty(t)));
        var usage = Assert.Single(events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement), c => c.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object);
        Assert.Equal(3, usage.GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task A_slow_reader_gets_the_text_written_before_a_call_ahead_of_the_call()
    {
        // Everything waits while the writer is in the flush of its role chunk: the text is held, then the call comes.
        using var chat = new ChatStream(promptTokens: 5, includeUsage: false);
        var (client, publisher, queue, streaming) = (chat.Client, chat.Publisher, chat.Queue, chat.Streaming);
        queue.Write(new TextDelta(0, "Let me", 1, null));
        queue.Write(new TextDelta(0, " add.", 1, null));
        queue.Write(new ToolCallStarted(0, 0, "call_1", "add"));
        queue.Write(new ToolCallArgumentsDelta(0, 0, "{\"a\":2}"));
        queue.Write(new GenerationCompleted(0, FinishReason.ToolCalls, new GenerationUsage(5, 0, 4), new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero)));
        queue.Complete();
        publisher.Publish();
        var events = await client.ReadUntilAsync(e => e.Contains("[DONE]"));
        await streaming;

        var deltas = events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement)
            .Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("delta")).ToList();
        var text = deltas.FindIndex(d => d.TryGetProperty("content", out var c) && c.GetString() == "Let me add.");
        var call = deltas.FindIndex(d => d.TryGetProperty("tool_calls", out _));
        Assert.True(text >= 0 && call >= 0 && text < call, string.Join("\n", events));
    }

    [Fact]
    public async Task A_reader_that_keeps_up_gets_one_chunk_per_delta()
    {
        using var chat = new ChatStream(promptTokens: 3, includeUsage: false);
        var (client, publisher, queue, streaming) = (chat.Client, chat.Publisher, chat.Queue, chat.Streaming);
        await client.ReadUntilAsync(e => e.Count == 1);

        var words = new[] { "One", " two", " three" };
        for (var i = 0; i < words.Length; i++)
        {
            queue.Write(new TextDelta(0, words[i], 1, null));
            publisher.Publish();
            var expected = i + 2;
            await client.ReadUntilAsync(e => e.Count == expected);
        }

        queue.Write(new GenerationCompleted(0, FinishReason.Stop, new GenerationUsage(3, 0, 3), new GenerationTimings(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero)));
        queue.Complete();
        publisher.Publish();
        var events = await client.ReadUntilAsync(e => e.Contains("[DONE]"));
        await streaming;

        var contents = events.Where(e => e != "[DONE]").Select(e => Content(JsonDocument.Parse(e).RootElement)).Where(t => !string.IsNullOrEmpty(t)).ToList();
        Assert.Equal(words, contents);
    }

    /// <summary>A chat completion streaming one choice to a <see cref="SlowClient"/>, fed by the test through <see cref="Queue"/>.</summary>
    private sealed class ChatStream : IDisposable
    {
        private readonly SseWriter _sse;

        public ChatStream(int promptTokens, bool includeUsage)
        {
            Queue = new GenerationEventQueue(Publisher);
            var stream = new GenerationStream("gen-test", promptTokens, choices: 1, Queue, () => { }, CancellationToken.None);
            var responder = new OpenAiResponder(TimeProvider.System, new FixedOptions(), NullLogger<OpenAiResponder>.Instance);
            _sse = SseWriter.Start(Client.Context);
            var formatter = new ChatChunkFormatter(_sse, "chatcmpl-test", 1, "stories", "fp_test", logProbs: false);
            Streaming = responder.StreamAsync(formatter, _sse, new StreamSource([stream], 1, "gen-test"), includeUsage);
        }

        public SlowClient Client { get; } = new();

        public StreamPublisher Publisher { get; } = new();

        public GenerationEventQueue Queue { get; }

        public Task Streaming { get; }

        public void Dispose() => _sse.Dispose();
    }

    private static string? Content(string json) => Content(JsonDocument.Parse(json).RootElement);

    private static string? Content(JsonElement chunk) =>
        chunk.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
            && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
            ? content.GetString()
            : null;

    private sealed class FixedOptions : IOptionsMonitor<OpenAiOptions>
    {
        public OpenAiOptions CurrentValue { get; } = new();

        public OpenAiOptions Get(string? name) => CurrentValue;

        public IDisposable? OnChange(Action<OpenAiOptions, string?> listener) => null;
    }

    /// <summary>A response whose flushes complete only as the test reads the bytes.</summary>
    private sealed class SlowClient : IHttpResponseBodyFeature
    {
        private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 1, resumeWriterThreshold: 1, useSynchronizationContext: false));
        private readonly StringBuilder _received = new();

        public SlowClient()
        {
            // The writer's stall limit stays at its default: the test's reads are what lets a flush finish.
            var services = new ServiceCollection()
                .AddSingleton(new StalledClients(Options.Create(new ServerOptions()), TimeProvider.System, NullLogger<StalledClients>.Instance))
                .BuildServiceProvider();
            Context = new DefaultHttpContext { RequestServices = services };
            Context.Features.Set<IHttpResponseBodyFeature>(this);
        }

        public HttpContext Context { get; }

        public Stream Stream => _pipe.Writer.AsStream();

        public PipeWriter Writer => _pipe.Writer;

        /// <summary>Reads (letting the writer's flush finish) until the events so far satisfy <paramref name="done"/>.</summary>
        public async Task<List<string>> ReadUntilAsync(Func<List<string>, bool> done)
        {
            while (true)
            {
                var events = Events();
                if (done(events))
                {
                    return events;
                }

                var result = await _pipe.Reader.ReadAsync();
                foreach (var segment in result.Buffer)
                {
                    _received.Append(Encoding.UTF8.GetString(segment.Span));
                }

                _pipe.Reader.AdvanceTo(result.Buffer.End);
            }
        }

        public void DisableBuffering()
        {
        }

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task CompleteAsync() => _pipe.Writer.CompleteAsync().AsTask();

        private List<string> Events() =>
            _received.ToString().Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
                .Where(e => e.StartsWith("data: ", StringComparison.Ordinal))
                .Select(e => e["data: ".Length..])
                .ToList();
    }
}
