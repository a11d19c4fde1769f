using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;

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
        var generation = AnthropicRequestMapper.Map(request, model, id);

        // Refusals (queue full, prompt too long, not ready) throw here, before any byte of the response.
        await using var stream = generator.Submit(generation, aborted);
        if (request.Stream == true)
        {
            await StreamAsync(context, stream, id, model.Id);
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
            [new AnthropicTextBlock("text", choice.Text)],
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
        _ = OpenAiRequestMapper.ResolveModel(generator, request.Model);
        var prompt = generator.ApplyChatTemplate(AnthropicRequestMapper.Turns(request), []);
        var count = generator.Tokenize(prompt, addSpecial: true, parseSpecial: true).Count;
        await context.Response.WriteAsJsonAsync(new AnthropicTokenCount(count), AnthropicJson.Context.AnthropicTokenCount, contentType: null, aborted);
    }

    /// <summary>
    /// The event sequence Anthropic sends: <c>message_start</c>, <c>content_block_start</c>, <c>ping</c>,
    /// <c>content_block_delta</c>s, <c>content_block_stop</c>, <c>message_delta</c>, <c>message_stop</c>; a
    /// failure after the start is one <c>error</c> event. Pings keep a queued request's connection alive.
    /// </summary>
    private async Task StreamAsync(HttpContext context, GenerationStream stream, string id, string modelId)
    {
        using var sse = SseWriter.Start(context);
        var events = new MessageEventWriter(sse);
        events.MessageStart(new AnthropicMessage(id, "message", "assistant", [], modelId, null, null, new AnthropicUsage(stream.PromptTokens, 0, 0, 0)));
        events.ContentBlockStart();
        events.Ping();
        await sse.FlushAsync();

        var end = await responder.RelayChoiceAsync(stream, sse, events.Ping, events.TextDelta, id);
        if (end is null)
        {
            return;
        }

        if (end.Completion is { } completion)
        {
            events.ContentBlockStop();
            events.MessageDelta(AnthropicRequestMapper.StopReason(completion)!, completion.StopSequence, AnthropicRequestMapper.Usage(completion.Usage));
            events.MessageStop();
        }
        else
        {
            AnthropicErrors.WriteEvent(sse, AnthropicErrors.StreamErrorType(end.Error!), end.Error!.Message);
        }

        await sse.FlushAsync();
    }

    /// <summary>Writes the named events; the per-token delta uses pre-encoded names.</summary>
    private sealed class MessageEventWriter(SseWriter sse)
    {
        private static readonly JsonEncodedText TypeName = JsonEncodedText.Encode("type");
        private static readonly JsonEncodedText IndexName = JsonEncodedText.Encode("index");
        private static readonly JsonEncodedText DeltaName = JsonEncodedText.Encode("delta");
        private static readonly JsonEncodedText TextName = JsonEncodedText.Encode("text");
        private static readonly JsonEncodedText ContentBlockDeltaType = JsonEncodedText.Encode("content_block_delta");
        private static readonly JsonEncodedText TextDeltaType = JsonEncodedText.Encode("text_delta");

        public void MessageStart(AnthropicMessage message)
        {
            var writer = sse.BeginEvent("message_start"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "message_start");
            writer.WritePropertyName("message");
            JsonSerializer.Serialize(writer, message, AnthropicJson.Context.AnthropicMessage);
            writer.WriteEndObject();
            sse.EndEvent();
        }

        public void ContentBlockStart()
        {
            var writer = sse.BeginEvent("content_block_start"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "content_block_start");
            writer.WriteNumber(IndexName, 0);
            writer.WriteStartObject("content_block");
            writer.WriteString(TypeName, "text");
            writer.WriteString(TextName, string.Empty);
            writer.WriteEndObject();
            writer.WriteEndObject();
            sse.EndEvent();
        }

        public void Ping()
        {
            var writer = sse.BeginEvent("ping"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "ping");
            writer.WriteEndObject();
            sse.EndEvent();
        }

        public void TextDelta(string text)
        {
            var writer = sse.BeginEvent("content_block_delta"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, ContentBlockDeltaType);
            writer.WriteNumber(IndexName, 0);
            writer.WriteStartObject(DeltaName);
            writer.WriteString(TypeName, TextDeltaType);
            writer.WriteString(TextName, text);
            writer.WriteEndObject();
            writer.WriteEndObject();
            sse.EndEvent();
        }

        public void ContentBlockStop()
        {
            var writer = sse.BeginEvent("content_block_stop"u8);
            writer.WriteStartObject();
            writer.WriteString(TypeName, "content_block_stop");
            writer.WriteNumber(IndexName, 0);
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
