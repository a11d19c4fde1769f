namespace LlmServer.Templating.Chat;

/// <summary>One call in an assistant message: <c>Arguments</c> is the JSON text the model wrote.</summary>
public sealed record ChatTemplateToolCall(string? Id, string Name, string Arguments);

/// <summary>An OpenAI-shaped chat message. <c>Content</c> may be null on an assistant message that only calls tools.</summary>
public sealed record ChatTemplateMessage(string Role, string? Content)
{
    /// <summary>The calls of an assistant message.</summary>
    public IReadOnlyList<ChatTemplateToolCall>? ToolCalls { get; init; }

    /// <summary>The call a <c>tool</c> message answers.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>The name of the tool (on a tool message) or of the participant.</summary>
    public string? Name { get; init; }

    /// <summary>The reasoning an assistant message carried, for templates that keep it.</summary>
    public string? ReasoningContent { get; init; }
}

/// <summary>A function offered to the model: <c>ParametersJson</c> is its JSON schema (an empty object when null).</summary>
public sealed record ChatTemplateTool(string Name, string? Description, string? ParametersJson);

/// <summary>What a chat template renders: the conversation, the tools, and whether to open the assistant's turn.</summary>
public sealed record ChatTemplateRequest(IReadOnlyList<ChatTemplateMessage> Messages)
{
    /// <summary>Functions offered to the model; none when null or empty.</summary>
    public IReadOnlyList<ChatTemplateTool>? Tools { get; init; }

    /// <summary>Whether the prompt ends by opening the assistant's turn.</summary>
    public bool AddGenerationPrompt { get; init; } = true;

    /// <summary>
    /// The template's <c>enable_thinking</c>: llama.cpp passes true unless told otherwise, and false to a template
    /// without a reasoning block (<see cref="ChatTemplateCapabilities.SupportsThinking"/>).
    /// </summary>
    public bool EnableThinking { get; init; } = true;
}
