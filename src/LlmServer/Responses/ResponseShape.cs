using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary>Builds the response object of one request at each stage (in progress, finished, failed) and its output items.</summary>
internal sealed class ResponseShape(CreateResponseRequest request, string id, long createdAt, string model)
{
    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();
    private static readonly JsonElement AutoChoice = JsonSerializer.SerializeToElement("auto", ResponsesJson.Context.String);

    public string Id => id;

    public static ResponseOutputText TextPart(string text) => new("output_text", text, [], []);

    public static ResponseOutputMessage Message(string itemId, string status, string? text) =>
        new(itemId, status, "assistant", text is null ? [] : [TextPart(text)]);

    public static ResponseFunctionCallItem FunctionCall(string itemId, string status, ToolCall call) =>
        new(itemId, status, call.Id, call.Name, call.Arguments);

    public static ResponseReasoningText ReasoningPart(string text) => new("reasoning_text", text);

    public static ResponseReasoningItem Reasoning(string itemId, string status, string? text) =>
        new(itemId, status, [], text is null ? [] : [ReasoningPart(text)]);

    public static string NewMessageId() => OpenAiResponder.NewId("msg_");

    public static string NewFunctionCallId() => OpenAiResponder.NewId("fc_");

    public static string NewReasoningId() => OpenAiResponder.NewId("rs_");

    /// <summary>
    /// The output of a whole answer: its reasoning (when there was some), its text as a message (when there is
    /// text, or nothing else), then one item per call; the last item is <paramref name="lastStatus"/> (incomplete
    /// when cut short).
    /// </summary>
    public static List<ResponseOutputItem> Output(string? reasoning, string text, IReadOnlyList<ToolCall> calls, string lastStatus)
    {
        var items = new List<ResponseOutputItem>(calls.Count + 2);
        var hasMessage = text.Length > 0 || (calls.Count == 0 && reasoning is null);
        if (reasoning is not null)
        {
            items.Add(Reasoning(NewReasoningId(), hasMessage || calls.Count > 0 ? "completed" : lastStatus, reasoning));
        }

        if (hasMessage)
        {
            items.Add(Message(NewMessageId(), calls.Count == 0 ? lastStatus : "completed", text));
        }

        for (var i = 0; i < calls.Count; i++)
        {
            items.Add(FunctionCall(NewFunctionCallId(), i == calls.Count - 1 ? lastStatus : "completed", calls[i]));
        }

        return items;
    }

    /// <summary>The status of a finished generation's response and of its last item.</summary>
    public static string Status(GenerationCompleted completion) => completion.FinishReason == FinishReason.Length ? "incomplete" : "completed";

    public ResponseObject InProgress() => Build("in_progress", [], null, null, null);

    /// <summary>
    /// A finished generation: completed, or incomplete with reason <c>max_output_tokens</c> when it hit the limit.
    /// </summary>
    public ResponseObject Finished(IReadOnlyList<ResponseOutputItem> output, GenerationCompleted completion)
    {
        var status = Status(completion);
        var usage = completion.Usage;
        return Build(
            status,
            output,
            status == "incomplete" ? new ResponseIncompleteDetails("max_output_tokens") : null,
            null,
            new ResponseUsage(usage.PromptTokens, new ResponseInputTokensDetails(usage.CachedPromptTokens), usage.CompletionTokens, new ResponseOutputTokensDetails(usage.ReasoningTokens), usage.TotalTokens));
    }

    public ResponseObject Failed(IReadOnlyList<ResponseOutputItem> output, OpenAiException error) =>
        Build("failed", output, null, new ResponseErrorInfo(error.Code ?? error.Type, error.Message), null);

    /// <summary>
    /// The conversation turn the answer adds: its text, calls and reasoning, the turn its output items make when
    /// replayed as input (the template decides whether the reasoning is rendered).
    /// </summary>
    public static ChatTurn AssistantTurn(IReadOnlyList<ResponseOutputItem> output)
    {
        var calls = output.OfType<ResponseFunctionCallItem>().Select(c => new ToolCall(c.CallId, c.Name, c.Arguments)).ToList();
        var text = OutputText(output);
        var reasoning = output.OfType<ResponseReasoningItem>()
            .Select(r => string.Join('\n', r.Content.Select(p => p.Text)))
            .Aggregate((string?)null, JoinReasoning);
        return new ChatTurn("assistant", calls.Count > 0 && text.Length == 0 ? null : text)
        {
            ToolCalls = calls.Count == 0 ? null : calls,
            ReasoningContent = reasoning,
        };
    }

    /// <summary>
    /// The reasoning a turn already had, then one more reasoning item's (its parts joined with newlines, as input
    /// items' parts are read): the one rule for the reasoning items of a replayed input
    /// (<see cref="ResponsesRequestMapper.Conversation"/>) and of a stored response's output
    /// (<see cref="AssistantTurn"/>), so that continuing with <c>previous_response_id</c> renders the prompt that
    /// replaying the output items does.
    /// </summary>
    public static string? JoinReasoning(string? reasoning, string? more) =>
        reasoning is null ? more : more is null ? reasoning : reasoning + "\n" + more;

    private static string OutputText(IReadOnlyList<ResponseOutputItem> output) =>
        string.Concat(output.OfType<ResponseOutputMessage>().SelectMany(m => m.Content).Select(p => p.Text));

    private ResponseObject Build(
        string status,
        IReadOnlyList<ResponseOutputItem> output,
        ResponseIncompleteDetails? incomplete,
        ResponseErrorInfo? error,
        ResponseUsage? usage)
    {
        var defaults = new SamplingOptions();
        return new ResponseObject(
            id,
            "response",
            createdAt,
            status,
            error,
            incomplete,
            request.Instructions,
            request.MaxOutputTokens,
            model,
            output,
            OutputText(output),
            request.ParallelToolCalls ?? true,
            request.PreviousResponseId,
            new ResponseReasoning(request.Reasoning?.Effort, request.Reasoning?.Summary),
            request.Store != false,
            request.Temperature ?? defaults.Temperature,
            ResponsesRequestMapper.TextInfo(request.Text?.Format),
            request.ToolChoice is { ValueKind: not JsonValueKind.Null } choice ? choice : AutoChoice,
            ResponsesRequestMapper.ToolsInfo(request.Tools),
            request.TopP ?? defaults.TopP,
            "disabled",
            usage,
            request.User,
            request.Metadata ?? NoMetadata);
    }
}
