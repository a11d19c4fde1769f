using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.OpenAi;

namespace LlmServer.Responses;

/// <summary>Builds the response object of one request at each stage: in progress, finished, failed.</summary>
internal sealed class ResponseShape(CreateResponseRequest request, string id, string messageId, long createdAt, string model)
{
    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();

    public string Id => id;

    public string MessageId => messageId;

    public static ResponseOutputText TextPart(string text) => new("output_text", text, [], []);

    public ResponseObject InProgress() => Build("in_progress", [], string.Empty, null, null, null);

    /// <summary>A finished generation: completed, or incomplete with reason <c>max_output_tokens</c> when it hit the limit.</summary>
    public ResponseObject Finished(string text, GenerationCompleted completion)
    {
        var incomplete = completion.FinishReason == FinishReason.Length;
        var status = incomplete ? "incomplete" : "completed";
        var usage = completion.Usage;
        return Build(
            status,
            [Message(status, text, withContent: true)],
            text,
            incomplete ? new ResponseIncompleteDetails("max_output_tokens") : null,
            null,
            new ResponseUsage(usage.PromptTokens, new ResponseInputTokensDetails(usage.CachedPromptTokens), usage.CompletionTokens, new ResponseOutputTokensDetails(0), usage.TotalTokens));
    }

    public ResponseObject Failed(string text, OpenAiException error) =>
        Build("failed", [Message("incomplete", text, withContent: true)], text, null, new ResponseErrorInfo(error.Code ?? error.Type, error.Message), null);

    public ResponseOutputMessage Message(string status, string text, bool withContent) =>
        new("message", messageId, status, "assistant", withContent ? [TextPart(text)] : []);

    private ResponseObject Build(
        string status,
        IReadOnlyList<ResponseOutputMessage> output,
        string text,
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
            text,
            ParallelToolCalls: true,
            request.PreviousResponseId,
            new ResponseReasoning(null, null),
            request.Store != false,
            request.Temperature ?? defaults.Temperature,
            ResponsesRequestMapper.TextInfo(request.Text?.Format),
            "auto",
            Array.Empty<JsonElement>(),
            request.TopP ?? defaults.TopP,
            "disabled",
            usage,
            request.User,
            request.Metadata ?? NoMetadata);
    }
}
