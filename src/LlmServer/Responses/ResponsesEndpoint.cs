using System.Text;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;
using LlmServer.Operations.Auth;

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
        var shape = new ResponseShape(request, id, OpenAiResponder.NewId("msg_"), responder.UnixNow(), model.Id);

        // Refusals (queue full, prompt too long, not ready) throw here, before any byte of the response.
        await using var stream = generator.Submit(generation, aborted);
        if (request.Stream == true)
        {
            var streamed = await StreamAsync(context, stream, shape);
            if (streamed is not null && stored)
            {
                Store(streamed, conversation, chainKey, owner);
            }

            return;
        }

        var result = await stream.CollectAsync(aborted);
        var choice = result.Choices[0];
        if (!OpenAiResponder.EnsureSucceeded([choice.Completion], aborted))
        {
            return;
        }

        var response = shape.Finished(choice.Text, choice.Completion);
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
        store.Add(new StoredResponse(response, [.. conversation, new ChatTurn("assistant", response.OutputText)], chainKey, owner, DateTimeOffset.FromUnixTimeSeconds(response.CreatedAt)));

    /// <summary>
    /// The semantic events in order: <c>response.created</c>, <c>response.in_progress</c>, the message item and
    /// its text part opened, <c>response.output_text.delta</c>s, then both closed and <c>response.completed</c>
    /// (or <c>response.incomplete</c>, or <c>response.failed</c>). Returns the final response, or null when the
    /// generation failed or the client went away.
    /// </summary>
    private async Task<ResponseObject?> StreamAsync(HttpContext context, GenerationStream stream, ResponseShape shape)
    {
        using var sse = SseWriter.Start(context);
        var events = new ResponseEventWriter(sse, shape.MessageId);
        events.WithResponse("response.created"u8, shape.InProgress());
        events.WithResponse("response.in_progress"u8, shape.InProgress());
        events.OutputItem("response.output_item.added"u8, shape.Message("in_progress", string.Empty, withContent: false));
        events.ContentPart("response.content_part.added"u8, string.Empty);
        await sse.FlushAsync();

        var text = new StringBuilder();
        var end = await responder.RelayChoiceAsync(
            stream,
            sse,
            sse.WriteKeepAlive,
            delta =>
            {
                text.Append(delta);
                events.TextDelta(delta);
            },
            shape.Id);
        if (end is null)
        {
            return null;
        }

        ResponseObject? final = null;
        if (end.Completion is { } completion)
        {
            final = shape.Finished(text.ToString(), completion);
            events.TextDone(final.OutputText);
            events.ContentPart("response.content_part.done"u8, final.OutputText);
            events.OutputItem("response.output_item.done"u8, final.Output[0]);
            events.WithResponse(final.Status == "completed" ? "response.completed"u8 : "response.incomplete"u8, final);
        }
        else
        {
            events.WithResponse("response.failed"u8, shape.Failed(text.ToString(), end.Error!));
        }

        await sse.FlushAsync();
        return final;
    }

    /// <summary>Writes the named events, each with its <c>sequence_number</c>.</summary>
    private sealed class ResponseEventWriter(SseWriter sse, string itemId)
    {
        private static readonly JsonEncodedText TypeName = JsonEncodedText.Encode("type");
        private static readonly JsonEncodedText SequenceName = JsonEncodedText.Encode("sequence_number");
        private static readonly JsonEncodedText ItemIdName = JsonEncodedText.Encode("item_id");
        private static readonly JsonEncodedText OutputIndexName = JsonEncodedText.Encode("output_index");
        private static readonly JsonEncodedText ContentIndexName = JsonEncodedText.Encode("content_index");
        private static readonly JsonEncodedText DeltaName = JsonEncodedText.Encode("delta");
        private static readonly JsonEncodedText LogprobsName = JsonEncodedText.Encode("logprobs");

        private readonly JsonEncodedText _itemId = JsonEncodedText.Encode(itemId);
        private int _sequence;

        public void WithResponse(ReadOnlySpan<byte> type, ResponseObject response)
        {
            var writer = Begin(type);
            writer.WritePropertyName("response");
            JsonSerializer.Serialize(writer, response, ResponsesJson.Context.ResponseObject);
            End(writer);
        }

        public void OutputItem(ReadOnlySpan<byte> type, ResponseOutputMessage item)
        {
            var writer = Begin(type);
            writer.WriteNumber(OutputIndexName, 0);
            writer.WritePropertyName("item");
            JsonSerializer.Serialize(writer, item, ResponsesJson.Context.ResponseOutputMessage);
            End(writer);
        }

        public void ContentPart(ReadOnlySpan<byte> type, string text)
        {
            var writer = BeginPart(type);
            writer.WritePropertyName("part");
            JsonSerializer.Serialize(writer, ResponseShape.TextPart(text), ResponsesJson.Context.ResponseOutputText);
            End(writer);
        }

        public void TextDelta(string text)
        {
            var writer = BeginPart("response.output_text.delta"u8);
            writer.WriteString(DeltaName, text);
            writer.WriteStartArray(LogprobsName);
            writer.WriteEndArray();
            End(writer);
        }

        public void TextDone(string text)
        {
            var writer = BeginPart("response.output_text.done"u8);
            writer.WriteString("text", text);
            writer.WriteStartArray(LogprobsName);
            writer.WriteEndArray();
            End(writer);
        }

        private Utf8JsonWriter BeginPart(ReadOnlySpan<byte> type)
        {
            var writer = Begin(type);
            writer.WriteString(ItemIdName, _itemId);
            writer.WriteNumber(OutputIndexName, 0);
            writer.WriteNumber(ContentIndexName, 0);
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
