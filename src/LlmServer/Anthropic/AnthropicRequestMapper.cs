using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.OpenAi;

namespace LlmServer.Anthropic;

/// <summary>
/// Checks Anthropic Messages fields and maps them onto the engine's request, with the OpenAI mapper's checks
/// where the fields mean the same (max tokens, stop sequences, top_p). Every refusal is a 400 naming the field.
/// </summary>
internal static class AnthropicRequestMapper
{
    public static GenerationRequest Map(MessagesRequest request, ModelInfo model, string requestId)
    {
        var maxTokens = request.MaxTokens ?? throw OpenAiException.InvalidField("max_tokens", "'max_tokens' is required.");
        var defaults = new SamplingOptions();
        return new GenerationRequest
        {
            Messages = Turns(request),
            MaxTokens = OpenAiRequestMapper.MaxTokens(maxTokens, "max_tokens", model),
            Stop = OpenAiRequestMapper.Stop(request.StopSequences),
            Sampling = new SamplingOptions
            {
                // Anthropic's temperature runs from 0 to 1.
                Temperature = OpenAiRequestMapper.InRange(request.Temperature, "temperature", new(0, 1)) ?? defaults.Temperature,
                TopP = OpenAiRequestMapper.TopP(request.TopP) ?? defaults.TopP,
                TopK = OpenAiRequestMapper.InRange(request.TopK, "top_k", GenerationLimits.TopK) ?? defaults.TopK,
            },
            RequestId = requestId,
        };
    }

    /// <summary>The system prompt and the messages as chat turns.</summary>
    public static IReadOnlyList<ChatTurn> Turns(MessagesRequest request)
    {
        OpenAiRequestMapper.RefuseTools(request.Tools, "tools");
        OpenAiRequestMapper.RefuseTools(request.ToolChoice, "tool_choice");
        var messages = request.Messages ?? throw OpenAiException.InvalidField("messages", "'messages' is required.");
        if (messages.Count == 0)
        {
            throw OpenAiException.InvalidField("messages", "'messages' must contain at least one message.");
        }

        var turns = new List<ChatTurn>(messages.Count + 1);
        if (!string.IsNullOrEmpty(request.System))
        {
            turns.Add(new ChatTurn("system", request.System));
        }

        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw OpenAiException.InvalidField($"messages[{i}]", $"messages[{i}] must be an object.");
            var role = message.Role switch
            {
                "user" or "assistant" => message.Role,
                null => throw OpenAiException.InvalidField($"messages[{i}].role", $"messages[{i}].role is required."),
                _ => throw OpenAiException.InvalidField(
                    $"messages[{i}].role",
                    $"Invalid value for messages[{i}].role: '{message.Role}'. Roles are user and assistant; the system prompt goes in 'system'."),
            };
            var content = message.Content ?? throw OpenAiException.InvalidField($"messages[{i}].content", $"messages[{i}].content is required.");
            turns.Add(new ChatTurn(role, content));
        }

        if (turns[^1].Role != "user")
        {
            throw OpenAiException.InvalidField(
                $"messages[{messages.Count - 1}].role",
                "The last message must be from the user: continuing a partial assistant message (prefill) is not supported.");
        }

        return turns;
    }

    /// <summary>Anthropic's stop reason for a finished generation; null for a failed or cancelled one.</summary>
    public static string? StopReason(GenerationCompleted completion) => completion.FinishReason switch
    {
        FinishReason.Stop => completion.StopSequence is null ? "end_turn" : "stop_sequence",
        FinishReason.Length => "max_tokens",
        _ => null,
    };

    public static AnthropicUsage Usage(GenerationUsage usage) =>
        new(usage.PromptTokens - usage.CachedPromptTokens, usage.CompletionTokens, 0, usage.CachedPromptTokens);
}
