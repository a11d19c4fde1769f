using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;
using LlmServer.Operations.Limits;

namespace LlmServer.Anthropic;

/// <summary><c>POST /v1/messages</c> (streamed or not) and <c>POST /v1/messages/count_tokens</c>.</summary>
internal sealed class MessagesEndpoint(ITextGenerator generator, OpenAiResponder responder)
{
    public async Task HandleAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, AnthropicJson.Context.MessagesRequest, aborted);
        var model = OpenAiRequestMapper.ResolveModel(generator, request.Model);
        var id = OpenAiResponder.NewId("msg_");
        var generation = AnthropicRequestMapper.Map(request, model, id) with { ReportAdmission = request.Stream == true };

        // Refusals (queue full, prompt too long, not ready) throw here, before any byte of the response.
        await using var stream = generator.Submit(generation, aborted);
        context.ReleasePermitWhenEnded(stream);
        if (request.Stream == true)
        {
            // A block opens when its first piece comes where reasoning may come first (it is the first block) or calls.
            var opensLazily = model.ChatTemplate?.WritesThinkTags == true || (generation.Tools.Count > 0 && generation.ToolChoice.Mode != ToolChoiceMode.None);
            await StreamAsync(context, stream, id, model.Id, opensLazily);
            return;
        }

        var result = await stream.CollectAsync(aborted);
        var choice = result.Choices[0];
        if (!OpenAiResponder.EnsureSucceeded([choice.Completion], aborted))
        {
            return;
        }

        var message = new AnthropicMessage(
            id,
            "message",
            "assistant",
            Content(choice.Reasoning, choice.Text, choice.ToolCalls),
            model.Id,
            AnthropicRequestMapper.StopReason(choice.Completion),
            choice.Completion.StopSequence,
            AnthropicRequestMapper.Usage(choice.Completion.Usage));
        await context.Response.WriteAsJsonAsync(message, AnthropicJson.Context.AnthropicMessage, contentType: null, aborted);
    }

    public async Task CountTokensAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, AnthropicJson.Context.MessagesRequest, aborted);
        var model = OpenAiRequestMapper.ResolveModel(generator, request.Model);
        var prompt = generator.RenderPrompt(AnthropicRequestMapper.Map(request, model, OpenAiResponder.NewId("msg_"), requireMaxTokens: false));
        var count = generator.Tokenize(prompt, addSpecial: true, parseSpecial: true).Count;
        await context.Response.WriteAsJsonAsync(new AnthropicTokenCount(count), AnthropicJson.Context.AnthropicTokenCount, contentType: null, aborted);
    }

    /// <summary>
    /// The answer's blocks: its reasoning (when there was some), its text (when there is text, or no other block, as
    /// the stream does), then one <c>tool_use</c> per call.
    /// </summary>
    private static List<AnthropicResponseBlock> Content(string? reasoning, string text, IReadOnlyList<ToolCall> calls)
    {
        var blocks = new List<AnthropicResponseBlock>(calls.Count + 2);
        if (reasoning is not null)
        {
            blocks.Add(new AnthropicThinkingBlock(reasoning, string.Empty));
        }

        if (text.Length > 0 || (calls.Count == 0 && reasoning is null))
        {
            blocks.Add(new AnthropicTextBlock(text));
        }

        blocks.AddRange(calls.Select(c => new AnthropicToolUseBlock(AnthropicToolIds.ToWire(c.Id), c.Name, AnthropicRequestMapper.Input(c.Arguments))));
        return blocks;
    }

    /// <summary>
    /// The event sequence Anthropic sends: <c>message_start</c>, then each content block (<c>content_block_start</c>,
    /// its <c>content_block_delta</c>s: <c>thinking_delta</c>, <c>text_delta</c> or <c>input_json_delta</c>, <c>content_block_stop</c>),
    /// <c>message_delta</c>, <c>message_stop</c>; a failure is one <c>error</c> event. <c>message_start</c> waits for
    /// the engine's admission (the first event, before the first token), so its input and cache figures are the
    /// final ones, as Anthropic's are; until then SSE comments keep the connection alive, pings after it. Without
    /// tools or reasoning the text block opens with the start, before the first <c>ping</c>; else a block opens when
    /// its first piece comes (a <c>thinking</c> block first).
    /// </summary>
    private async Task StreamAsync(HttpContext context, GenerationStream stream, string id, string modelId, bool opensLazily)
    {
        using var sse = SseWriter.Start(context);
        var unadmitted = new AnthropicMessage(id, "message", "assistant", [], modelId, null, null, AnthropicRequestMapper.Usage(new GenerationUsage(stream.PromptTokens, 0, 0)));
        var events = new MessageEventWriter(sse, unadmitted, openText: !opensLazily);
        await sse.FlushAsync();

        var end = await responder.RelayChoiceAsync(stream, sse, events.KeepAlive, events.Text, id, events.ToolCall, events.Admitted, events.Thinking);
        if (end is null)
        {
            return;
        }

        if (end.Completion is { } completion)
        {
            events.Finish();
            events.MessageDelta(AnthropicRequestMapper.StopReason(completion)!, completion.StopSequence, AnthropicRequestMapper.Usage(completion.Usage));
            events.MessageStop();
        }
        else
        {
            AnthropicErrors.WriteEvent(sse, AnthropicErrors.StreamErrorType(end.Error!), end.Error!.Message);
        }

        await sse.FlushAsync();
    }

    /// <summary>
    /// Writes the named events. One content block is open at a time: reasoning goes to the open thinking block (or
    /// opens one), text to the open text block (or opens one), a tool call closes what is open and opens its
    /// <c>tool_use</c> block. The per-token delta uses
    /// pre-encoded names.
    /// </summary>
    /// <param name="unadmitted">The <c>message_start</c> message for a stream that ends without an admission event.</param>
    /// <param name="openText">Open the text block right after <c>message_start</c> (no tools offered).</param>
    private sealed class MessageEventWriter(SseWriter sse, AnthropicMessage unadmitted, bool openText)
    {
        private static readonly JsonEncodedText TypeName = JsonEncodedText.Encode("type");
        private static readonly JsonEncodedText IndexName = JsonEncodedText.Encode("index");
        private static readonly JsonEncodedText DeltaName = JsonEncodedText.Encode("delta");
        private static readonly JsonEncodedText TextName = JsonEncodedText.Encode("text");
        private static readonly JsonEncodedText ContentBlockDeltaType = JsonEncodedText.Encode("content_block_delta");
        private static readonly JsonEncodedText TextDeltaType = JsonEncodedText.Encode("text_delta");
        private static readonly JsonEncodedText ThinkingName = JsonEncodedText.Encode("thinking");
        private static readonly JsonEncodedText ThinkingDeltaType = JsonEncodedText.Encode("thinking_delta");
        private static readonly JsonEncodedText InputJsonDeltaType = JsonEncodedText.Encode("input_json_delta");
        private static readonly JsonEncodedText PartialJsonName = JsonEncodedText.Encode("partial_json");

        private enum Block
        {
            None,
            Thinking,
            Text,
            ToolUse,
        }

        private Block _open;
        private int _index = -1;
        private bool _started;

        /// <summary>The engine admitted the request: <c>message_start</c> carries its prompt and cached-prefix figures.</summary>
        public void Admitted(RequestAdmitted admitted) =>
            MessageStart(unadmitted with { Usage = AnthropicRequestMapper.Usage(new GenerationUsage(admitted.PromptTokens, admitted.CachedPromptTokens, 0)) });

        /// <summary>Before <c>message_start</c> an SSE comment (Anthropic's stream opens with that event), after it a ping.</summary>
        public void KeepAlive()
        {
            if (_started)
            {
                Ping();
            }
            else
            {
                sse.WriteKeepAlive();
            }
        }

        private void MessageStart(AnthropicMessage message)
        {
            if (_started)
            {
                return;
            }

            _started = true;
            var writer = sse.BeginEvent("message_start"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "message_start");
            writer.WritePropertyName("message");
            JsonSerializer.Serialize(writer, message, AnthropicJson.Context.AnthropicMessage);
            writer.WriteEndObject();
            sse.EndEvent();
            if (openText)
            {
                Text(string.Empty);
            }

            Ping();
        }

        private void Ping()
        {
            var writer = sse.BeginEvent("ping"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "ping");
            writer.WriteEndObject();
            sse.EndEvent();
        }

        public void Text(string text)
        {
            MessageStart(unadmitted);
            if (_open != Block.Text)
            {
                BlockStart(Block.Text, new AnthropicTextBlock(string.Empty));
            }

            if (text.Length > 0)
            {
                var writer = BeginDelta(TextDeltaType);
                writer.WriteString(TextName, text);
                EndDelta(writer);
            }
        }

        public void Thinking(string thinking)
        {
            MessageStart(unadmitted);
            if (_open != Block.Thinking)
            {
                BlockStart(Block.Thinking, new AnthropicThinkingBlock(string.Empty, string.Empty));
            }

            var writer = BeginDelta(ThinkingDeltaType);
            writer.WriteString(ThinkingName, thinking);
            EndDelta(writer);
        }

        public void ToolCall(GenerationEvent item)
        {
            MessageStart(unadmitted);
            switch (item)
            {
                case ToolCallStarted started:
                    BlockStart(Block.ToolUse, new AnthropicToolUseBlock(AnthropicToolIds.ToWire(started.Id), started.Name, AnthropicRequestMapper.Input("{}")));
                    break;
                case ToolCallArgumentsDelta arguments when _open == Block.ToolUse:
                    var writer = BeginDelta(InputJsonDeltaType);
                    writer.WriteString(PartialJsonName, arguments.Fragment);
                    EndDelta(writer);
                    break;
            }
        }

        /// <summary>Closes the open block; an answer with no block at all gets an empty text block.</summary>
        public void Finish()
        {
            MessageStart(unadmitted);
            if (_index < 0)
            {
                Text(string.Empty);
            }

            BlockStop();
        }

        private void BlockStart(Block kind, AnthropicResponseBlock block)
        {
            BlockStop();
            _open = kind;
            _index++;
            var writer = sse.BeginEvent("content_block_start"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "content_block_start");
            writer.WriteNumber(IndexName, _index);
            writer.WritePropertyName("content_block");
            JsonSerializer.Serialize(writer, block, AnthropicJson.Context.AnthropicResponseBlock);
            writer.WriteEndObject();
            sse.EndEvent();
        }

        private void BlockStop()
        {
            if (_open == Block.None)
            {
                return;
            }

            _open = Block.None;
            var writer = sse.BeginEvent("content_block_stop"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "content_block_stop");
            writer.WriteNumber(IndexName, _index);
            writer.WriteEndObject();
            sse.EndEvent();
        }

        private Utf8JsonWriter BeginDelta(JsonEncodedText deltaType)
        {
            var writer = sse.BeginEvent("content_block_delta"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, ContentBlockDeltaType);
            writer.WriteNumber(IndexName, _index);
            writer.WriteStartObject(DeltaName);
            writer.WriteString(TypeName, deltaType);
            return writer;
        }

        private void EndDelta(Utf8JsonWriter writer)
        {
            writer.WriteEndObject();
            writer.WriteEndObject();
            sse.EndEvent();
        }

        public void MessageDelta(string stopReason, string? stopSequence, AnthropicUsage usage)
        {
            var writer = sse.BeginEvent("message_delta"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "message_delta");
            writer.WriteStartObject(DeltaName);
            writer.WriteString("stop_reason", stopReason);
            writer.WriteString("stop_sequence", stopSequence);
            writer.WriteEndObject();
            writer.WritePropertyName("usage");
            JsonSerializer.Serialize(writer, usage, AnthropicJson.Context.AnthropicUsage);
            writer.WriteEndObject();
            sse.EndEvent();
        }

        public void MessageStop()
        {
            var writer = sse.BeginEvent("message_stop"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "message_stop");
            writer.WriteEndObject();
            sse.EndEvent();
        }
    }
}
