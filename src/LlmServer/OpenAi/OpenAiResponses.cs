using System.Text.Json.Serialization;

namespace LlmServer.OpenAi;

public sealed record ChatCompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    string SystemFingerprint,
    IReadOnlyList<ChatChoice> Choices,
    Usage Usage);

public sealed record ChatChoice(int Index, AssistantMessage Message, ChatLogProbs? Logprobs, string? FinishReason);

/// <summary>The answer: <c>content</c> is null when the model only called tools.</summary>
public sealed record AssistantMessage(string Role, string? Content)
{
    public string? Refusal => null;

    /// <summary>The model's reasoning (its <c>&lt;think&gt;</c> block), as llama-server returns it; absent when none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ReasoningContent { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ResponseToolCall>? ToolCalls { get; init; }
}

/// <summary>A call the model made: <c>arguments</c> is JSON text.</summary>
public sealed record ResponseToolCall(string Id, string Type, ResponseFunctionCall Function);

public sealed record ResponseFunctionCall(string Name, string Arguments);

/// <summary>Chat log-probabilities: one entry per generated token.</summary>
public sealed record ChatLogProbs(IReadOnlyList<TokenLogProbEntry> Content)
{
    public IReadOnlyList<TokenLogProbEntry>? Refusal => null;
}

public sealed record TokenLogProbEntry(string Token, float Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<TopLogProbEntry> TopLogprobs);

public sealed record TopLogProbEntry(string Token, float Logprob, IReadOnlyList<int> Bytes);

public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens, PromptTokensDetails PromptTokensDetails)
{
    /// <summary>How many of the completion tokens were reasoning: only when the answer had reasoning.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public CompletionTokensDetails? CompletionTokensDetails { get; init; }

    /// <summary>The details for <paramref name="reasoningTokens"/>: null without reasoning.</summary>
    public static CompletionTokensDetails? ReasoningDetails(int reasoningTokens) =>
        reasoningTokens > 0 ? new CompletionTokensDetails(reasoningTokens) : null;
}

public sealed record CompletionTokensDetails(int ReasoningTokens);

public sealed record PromptTokensDetails(int CachedTokens);

public sealed record CompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    string SystemFingerprint,
    IReadOnlyList<CompletionChoice> Choices,
    Usage Usage);

public sealed record CompletionChoice(string Text, int Index, CompletionLogProbs? Logprobs, string? FinishReason);

/// <summary>The legacy completions log-probability layout: parallel arrays.</summary>
public sealed record CompletionLogProbs(
    IReadOnlyList<string> Tokens,
    IReadOnlyList<float> TokenLogprobs,
    IReadOnlyList<Dictionary<string, float>> TopLogprobs,
    IReadOnlyList<int> TextOffset);

public sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

/// <summary>
/// An OpenAI model object, plus what llama-server clients look for: the context length a request can use and
/// facts about the GGUF.
/// </summary>
public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, int ContextLength, ModelMeta Meta);

public sealed record ModelMeta(
    string Architecture,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name,
    ulong Parameters,
    ulong SizeBytes,
    int VocabSize,
    int TrainingContextLength,
    int Slots,
    bool HasChatTemplate);

public sealed record TokenizeResponse(IReadOnlyList<int> Tokens);

public sealed record TokenizeWithPiecesResponse(IReadOnlyList<TokenPiece> Tokens);

public sealed record TokenPiece(int Id, string Piece);

public sealed record DetokenizeResponse(string Content);

public sealed record ApplyTemplateResponse(string Prompt);

public sealed record OpenAiErrorResponse(OpenAiError Error);

public sealed record OpenAiError(string Message, string Type, string? Param, string? Code);
