using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;
using LlmServer.Operations.Auth;
using LlmServer.Operations.Limits;

namespace LlmServer.Responses;

/// <summary>
/// <c>POST /v1/responses</c> (streamed as semantic events or not), and <c>GET</c>/<c>DELETE /v1/responses/{id}</c>
/// for stored ones. A continuation (<c>previous_response_id</c>) passes its chain's key to the scheduler as the
/// session key, so the conversation's KV cache stays resident between turns and only the new input is prefilled.
/// </summary>
internal sealed class ResponsesEndpoint(ITextGenerator generator, OpenAiResponder responder, ResponseStore store)
{
    public async Task CreateAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        var request = await JsonBodyReader.ReadAsync(context, ResponsesJson.Context.CreateResponseRequest, aborted);
        var model = OpenAiRequestMapper.ResolveModel(generator, request.Model);
        var owner = context.User.GetApiKeyId();
        var previous = request.PreviousResponseId is { } previousId
            ? store.Get(previousId, owner) ?? throw OpenAiException.InvalidField(
                "previous_response_id", $"Previous response with id '{previousId}' not found (it was not stored, was deleted, or has expired).")
            : null;
        var conversation = ResponsesRequestMapper.Conversation(request, previous);
        var id = OpenAiResponder.NewId("resp_");
        var stored = request.Store != false;
        var chainKey = previous?.ChainKey ?? "responses:" + id;
        var generation = ResponsesRequestMapper.Map(request, conversation, model, id, stored ? chainKey : null);
        using var chain = stored ? store.UseChain(chainKey) : null;
        var shape = new ResponseShape(request, id, responder.UnixNow(), model.Id);

        // Refusals (queue full, prompt too long, not ready) throw here, before any byte of the response.
        await using var stream = generator.Submit(generation, aborted);
        context.ReleasePermitWhenEnded(stream);
        if (request.Stream == true)
        {
            // An item opens when its first piece comes where reasoning may come first or calls may come.
            var opensLazily = model.ChatTemplate?.WritesThinkTags == true || (generation.Tools.Count > 0 && generation.ToolChoice.Mode != ToolChoiceMode.None);
            await StreamAsync(context, stream, shape, opensLazily, final =>
            {
                if (stored)
                {
                    Store(final, conversation, chainKey, owner);
                }
            });
            return;
        }

        var result = await stream.CollectAsync(aborted);
        var choice = result.Choices[0];
        if (!OpenAiResponder.EnsureSucceeded([choice.Completion], aborted))
        {
            return;
        }

        var response = shape.Finished(
            ResponseShape.Output(choice.Reasoning, choice.Text, choice.ToolCalls, ResponseShape.Status(choice.Completion)), choice.Completion);
        if (stored)
        {
            Store(response, conversation, chainKey, owner);
        }

        await context.Response.WriteAsJsonAsync(response, ResponsesJson.Context.ResponseObject, contentType: null, aborted);
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        var stored = store.Get(id, context.User.GetApiKeyId()) ?? throw NotFound(id);
        await context.Response.WriteAsJsonAsync(stored.Response, ResponsesJson.Context.ResponseObject, contentType: null, context.RequestAborted);
    }

    public async Task DeleteAsync(HttpContext context, string id)
    {
        if (!store.Delete(id, context.User.GetApiKeyId()))
        {
            throw NotFound(id);
        }

        await context.Response.WriteAsJsonAsync(new ResponseDeleted(id, "response.deleted", true), ResponsesJson.Context.ResponseDeleted, contentType: null, context.RequestAborted);
    }

    private static OpenAiException NotFound(string id) => new(
        StatusCodes.Status404NotFound, OpenAiErrors.InvalidRequestError, $"No response with id '{id}' is stored.", "id", "not_found");

    private void Store(ResponseObject response, List<ChatTurn> conversation, string chainKey, string? owner) =>
        store.Add(new StoredResponse(response, [.. conversation, ResponseShape.AssistantTurn(response.Output)], chainKey, owner));

    /// <summary>
    /// The semantic events in order: <c>response.created</c>, <c>response.in_progress</c>, then each output item
    /// as it comes (reasoning: <c>response.output_item.added</c>, <c>response.content_part.added</c>,
    /// <c>response.reasoning_text.delta</c>s, <c>response.reasoning_text.done</c>, <c>response.content_part.done</c>,
    /// <c>response.output_item.done</c>, as OpenAI's reference server for its open-weight models streams it; a
    /// message: the same with <c>response.output_text.delta</c>s and <c>response.output_text.done</c>; a function
    /// call: <c>response.output_item.added</c>, <c>response.function_call_arguments.delta</c>s,
    /// <c>response.function_call_arguments.done</c>, <c>response.output_item.done</c>), then
    /// <c>response.completed</c> (or <c>response.incomplete</c>, or <c>response.failed</c>). The message opens at
    /// once, unless <paramref name="opensLazily"/> (reasoning or calls may come first): then each item opens when
    /// its first piece comes. <paramref name="finished"/> gets the final response before its event is written, so
    /// a client that continues it as soon as it reads <c>response.completed</c> finds it stored.
    /// </summary>
    private async Task StreamAsync(HttpContext context, GenerationStream stream, ResponseShape shape, bool opensLazily, Action<ResponseObject> finished)
    {
        using var sse = SseWriter.Start(context);
        var events = new ResponseEventWriter(sse);
        events.WithResponse("response.created"u8, shape.InProgress());
        events.WithResponse("response.in_progress"u8, shape.InProgress());
        var output = new StreamedOutput(events);
        if (!opensLazily)
        {
            output.OpenMessage();
        }

        await sse.FlushAsync();
        var end = await responder.RelayChoiceAsync(stream, sse, sse.WriteKeepAlive, output.Text, shape.Id, output.ToolCall, onReasoning: output.Reasoning);
        if (end is null)
        {
            return;
        }

        if (end.Completion is { } completion)
        {
            var final = shape.Finished(output.Finish(ResponseShape.Status(completion)), completion);
            finished(final);
            events.WithResponse(final.Status == "completed" ? "response.completed"u8 : "response.incomplete"u8, final);
        }
        else
        {
            events.WithResponse("response.failed"u8, shape.Failed(output.Snapshot(), end.Error!));
        }

        await sse.FlushAsync();
    }

    /// <summary>
    /// The output items of a stream as they come: one item is open at a time (reasoning goes to the open reasoning
    /// item, text to the open message, or each opens its own; a call closes what is open and opens its own item).
    /// Closing an item writes its done events.
    /// </summary>
    private sealed class StreamedOutput
    {
        private readonly ResponseEventWriter _events;
        private readonly List<ResponseOutputItem> _closed = [];
        private readonly ContentItem<ResponseOutputText> _message;
        private readonly ContentItem<ResponseReasoningText> _reasoning;
        private (string ItemId, ToolCallStarted Call, StringBuilder Arguments)? _call;

        public StreamedOutput(ResponseEventWriter events)
        {
            _events = events;
            _message = new(events, _closed, ResponseShape.NewMessageId, ResponseShape.Message, ResponseShape.TextPart, ResponsesJson.Context.ResponseOutputText, events.TextDelta, events.TextDone);
            _reasoning = new(events, _closed, ResponseShape.NewReasoningId, ResponseShape.Reasoning, ResponseShape.ReasoningPart, ResponsesJson.Context.ResponseReasoningText, events.ReasoningDelta, events.ReasoningDone);
        }

        private int OpenIndex => _closed.Count;

        public void OpenMessage()
        {
            if (_message.IsOpen)
            {
                return;
            }

            _reasoning.Close("completed");
            CloseCall("completed");
            _message.Open();
        }

        /// <summary>A piece of the answer: an empty one (tokens without text) opens no message, as a whole answer without text has none.</summary>
        public void Text(string delta)
        {
            if (delta.Length == 0)
            {
                return;
            }

            OpenMessage();
            _message.Append(delta);
        }

        public void Reasoning(string delta)
        {
            if (!_reasoning.IsOpen)
            {
                _message.Close("completed");
                CloseCall("completed");
                _reasoning.Open();
            }

            _reasoning.Append(delta);
        }

        public void ToolCall(GenerationEvent item)
        {
            switch (item)
            {
                case ToolCallStarted started:
                    _reasoning.Close("completed");
                    _message.Close("completed");
                    CloseCall("completed");
                    _call = (ResponseShape.NewFunctionCallId(), started, new StringBuilder());
                    _events.OutputItem("response.output_item.added"u8, OpenIndex, ResponseShape.FunctionCall(_call.Value.ItemId, "in_progress", Call(started, string.Empty)));
                    break;
                case ToolCallArgumentsDelta arguments when _call is { } call:
                    call.Arguments.Append(arguments.Fragment);
                    _events.ArgumentsDelta(call.ItemId, OpenIndex, arguments.Fragment);
                    break;
            }
        }

        /// <summary>Closes the open item with <paramref name="status"/>; an answer with no item at all gets an empty message.</summary>
        public List<ResponseOutputItem> Finish(string status)
        {
            if (_closed.Count == 0 && !_message.IsOpen && _call is null && !_reasoning.IsOpen)
            {
                OpenMessage();
            }

            _reasoning.Close(status);
            _message.Close(status);
            CloseCall(status);
            return _closed;
        }

        /// <summary>The items so far, the open one incomplete (for a failed response).</summary>
        public List<ResponseOutputItem> Snapshot()
        {
            List<ResponseOutputItem> items = [.. _closed];
            if (_reasoning.Incomplete() is { } reasoning)
            {
                items.Add(reasoning);
            }

            if (_message.Incomplete() is { } message)
            {
                items.Add(message);
            }

            if (_call is { } call)
            {
                items.Add(ResponseShape.FunctionCall(call.ItemId, "incomplete", Call(call.Call, call.Arguments.ToString())));
            }

            return items;
        }

        private static ToolCall Call(ToolCallStarted started, string arguments) => new(started.Id, started.Name, arguments);

        private void CloseCall(string status)
        {
            if (_call is not { } open)
            {
                return;
            }

            var call = Call(open.Call, open.Arguments.ToString());
            _events.ArgumentsDone(open.ItemId, OpenIndex, call);
            var item = ResponseShape.FunctionCall(open.ItemId, status, call);
            _events.OutputItem("response.output_item.done"u8, OpenIndex, item);
            _closed.Add(item);
            _call = null;
        }
    }

    /// <summary>
    /// An output item of one text part that comes in deltas, a message or reasoning (<paramref name="item"/> and
    /// <paramref name="part"/> build them, <paramref name="writeDelta"/> and <paramref name="writeDone"/> write their
    /// text's events). Opening writes <c>response.output_item.added</c> and <c>response.content_part.added</c>;
    /// closing writes the text's done event, <c>response.content_part.done</c> and <c>response.output_item.done</c>,
    /// and adds the item to <paramref name="closed"/>, whose count is the open item's output index.
    /// </summary>
    private sealed class ContentItem<TPart>(
        ResponseEventWriter events,
        List<ResponseOutputItem> closed,
        Func<string> newId,
        Func<string, string, string?, ResponseOutputItem> item,
        Func<string, TPart> part,
        JsonTypeInfo<TPart> partType,
        Action<string, int, string> writeDelta,
        Action<string, int, string> writeDone)
    {
        private readonly StringBuilder _text = new();
        private string? _itemId;

        public bool IsOpen => _itemId is not null;

        public void Open()
        {
            _itemId = newId();
            events.OutputItem("response.output_item.added"u8, closed.Count, item(_itemId, "in_progress", null));
            events.ContentPart("response.content_part.added"u8, _itemId, closed.Count, part(string.Empty), partType);
        }

        public void Append(string delta)
        {
            _text.Append(delta);
            writeDelta(_itemId!, closed.Count, delta);
        }

        public void Close(string status)
        {
            if (_itemId is not { } itemId)
            {
                return;
            }

            var text = _text.ToString();
            writeDone(itemId, closed.Count, text);
            events.ContentPart("response.content_part.done"u8, itemId, closed.Count, part(text), partType);
            var done = item(itemId, status, text);
            events.OutputItem("response.output_item.done"u8, closed.Count, done);
            closed.Add(done);
            _itemId = null;
            _text.Clear();
        }

        /// <summary>The open item so far, incomplete; null when none is open.</summary>
        public ResponseOutputItem? Incomplete() => _itemId is { } itemId ? item(itemId, "incomplete", _text.ToString()) : null;
    }

    /// <summary>Writes the named events, each with its <c>sequence_number</c>.</summary>
    private sealed class ResponseEventWriter(SseWriter sse)
    {
        private static readonly JsonEncodedText TypeName = JsonEncodedText.Encode("type");
        private static readonly JsonEncodedText SequenceName = JsonEncodedText.Encode("sequence_number");
        private static readonly JsonEncodedText ItemIdName = JsonEncodedText.Encode("item_id");
        private static readonly JsonEncodedText OutputIndexName = JsonEncodedText.Encode("output_index");
        private static readonly JsonEncodedText ContentIndexName = JsonEncodedText.Encode("content_index");
        private static readonly JsonEncodedText DeltaName = JsonEncodedText.Encode("delta");
        private static readonly JsonEncodedText LogprobsName = JsonEncodedText.Encode("logprobs");

        private int _sequence;

        public void WithResponse(ReadOnlySpan<byte> type, ResponseObject response)
        {
            var writer = Begin(type);
            writer.WritePropertyName("response");
            JsonSerializer.Serialize(writer, response, ResponsesJson.Context.ResponseObject);
            End(writer);
        }

        public void OutputItem(ReadOnlySpan<byte> type, int outputIndex, ResponseOutputItem item)
        {
            var writer = Begin(type);
            writer.WriteNumber(OutputIndexName, outputIndex);
            writer.WritePropertyName("item");
            JsonSerializer.Serialize(writer, item, ResponsesJson.Context.ResponseOutputItem);
            End(writer);
        }

        public void ContentPart<TPart>(ReadOnlySpan<byte> type, string itemId, int outputIndex, TPart part, JsonTypeInfo<TPart> partType)
        {
            var writer = BeginPart(type, itemId, outputIndex);
            writer.WritePropertyName("part");
            JsonSerializer.Serialize(writer, part, partType);
            End(writer);
        }

        public void TextDelta(string itemId, int outputIndex, string text)
        {
            var writer = BeginPart("response.output_text.delta"u8, itemId, outputIndex);
            writer.WriteString(DeltaName, text);
            writer.WriteStartArray(LogprobsName);
            writer.WriteEndArray();
            End(writer);
        }

        public void TextDone(string itemId, int outputIndex, string text)
        {
            var writer = BeginPart("response.output_text.done"u8, itemId, outputIndex);
            writer.WriteString("text", text);
            writer.WriteStartArray(LogprobsName);
            writer.WriteEndArray();
            End(writer);
        }

        public void ReasoningDelta(string itemId, int outputIndex, string text)
        {
            var writer = BeginPart("response.reasoning_text.delta"u8, itemId, outputIndex);
            writer.WriteString(DeltaName, text);
            End(writer);
        }

        public void ReasoningDone(string itemId, int outputIndex, string text)
        {
            var writer = BeginPart("response.reasoning_text.done"u8, itemId, outputIndex);
            writer.WriteString("text", text);
            End(writer);
        }

        public void ArgumentsDelta(string itemId, int outputIndex, string fragment)
        {
            var writer = BeginItem("response.function_call_arguments.delta"u8, itemId, outputIndex);
            writer.WriteString(DeltaName, fragment);
            End(writer);
        }

        public void ArgumentsDone(string itemId, int outputIndex, ToolCall call)
        {
            var writer = BeginItem("response.function_call_arguments.done"u8, itemId, outputIndex);
            writer.WriteString("name", call.Name);
            writer.WriteString("arguments", call.Arguments);
            End(writer);
        }

        private Utf8JsonWriter BeginPart(ReadOnlySpan<byte> type, string itemId, int outputIndex)
        {
            var writer = BeginItem(type, itemId, outputIndex);
            writer.WriteNumber(ContentIndexName, 0);
            return writer;
        }

        private Utf8JsonWriter BeginItem(ReadOnlySpan<byte> type, string itemId, int outputIndex)
        {
            var writer = Begin(type);
            writer.WriteString(ItemIdName, itemId);
            writer.WriteNumber(OutputIndexName, outputIndex);
            return writer;
        }

        private Utf8JsonWriter Begin(ReadOnlySpan<byte> type)
        {
            var writer = sse.BeginEvent(type);
            writer.WriteStartObject();
            writer.WriteString(TypeName, type);
            writer.WriteNumber(SequenceName, _sequence++);
            return writer;
        }

        private void End(Utf8JsonWriter writer)
        {
            writer.WriteEndObject();
            sse.EndEvent();
        }
    }
}
