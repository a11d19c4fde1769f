using System.Text;
using System.Text.Json;
using LLama;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using LlmServer.Templating;
using LlmServer.Templating.Chat;

namespace LlmServer.Engine.Prompting;

/// <summary>
/// Renders chat messages into prompt text. The model's own Jinja template (<c>tokenizer.chat_template</c>), or the
/// one <c>Model:ChatTemplateFile</c> names, is parsed once at load and rendered by our Jinja interpreter as llama.cpp
/// renders it; a model without one uses <c>Model:FallbackChatTemplate</c> (a llama.cpp built-in template name, or
/// <c>plain</c>), which knows no tools.
/// </summary>
internal sealed class ChatPromptFormatter
{
    public const string PlainTemplate = "plain";

    private readonly ChatTemplate? _jinja;
    private readonly string _fallback;

    private ChatPromptFormatter(ChatTemplate? jinja, string fallback, ChatTemplateInfo info)
    {
        _jinja = jinja;
        _fallback = fallback;
        Info = info;
    }

    /// <summary>Where the template came from and what it is, for /props and logs.</summary>
    public ChatTemplateInfo Info { get; }

    /// <summary>The template in use, for logs: <c>gguf</c>, the file's path, or the fallback's name.</summary>
    public string TemplateName => Info.Name;

    /// <summary>
    /// Picks and parses the template: the file when <see cref="ModelOptions.ChatTemplateFile"/> is set (a template
    /// that does not parse fails the load), else the GGUF's unless <see cref="ModelOptions.ForceFallbackChatTemplate"/>
    /// (one that does not parse is reported through <paramref name="onTemplateError"/> and the fallback serves).
    /// </summary>
    public static ChatPromptFormatter Create(LLamaWeights weights, ModelOptions options, TimeProvider clock, Action<TemplateException>? onTemplateError = null)
    {
        var vocab = weights.Vocab;
        var templateOptions = new ChatTemplateOptions
        {
            BosToken = vocab.BOS is { } bos ? vocab.LLamaTokenToString(bos, true) ?? string.Empty : string.Empty,
            EosToken = vocab.EOS is { } eos ? vocab.LLamaTokenToString(eos, true) ?? string.Empty : string.Empty,
            AddBos = vocab.ShouldAddBOS,
            AddEos = vocab.ShouldAddEOS,
            Clock = clock,
        };
        var fallback = options.FallbackChatTemplate;
        if (!string.IsNullOrWhiteSpace(options.ChatTemplateFile))
        {
            var source = File.ReadAllText(options.ChatTemplateFile);
            var template = ChatTemplate.Parse(source, templateOptions);
            return new ChatPromptFormatter(template, fallback, new ChatTemplateInfo(ChatTemplateInfo.FileOrigin, options.ChatTemplateFile, source, template.Capabilities));
        }

        if (!options.ForceFallbackChatTemplate && ModelLoader.ReadChatTemplate(weights) is { } ggufSource)
        {
            try
            {
                var template = ChatTemplate.Parse(ggufSource, templateOptions);
                return new ChatPromptFormatter(template, fallback, new ChatTemplateInfo(ChatTemplateInfo.GgufOrigin, "gguf", ggufSource, template.Capabilities));
            }
            catch (TemplateException e)
            {
                onTemplateError?.Invoke(e);
            }
        }

        return new ChatPromptFormatter(null, fallback, new ChatTemplateInfo(ChatTemplateInfo.FallbackOrigin, fallback, null, null));
    }

    /// <summary>
    /// Renders the conversation and the tools offered. A template that refuses it (<c>raise_exception</c>) throws
    /// <see cref="GenerationErrorCode.TemplateRefused"/> with the template's message; a conversation the template
    /// cannot render, or tool-call arguments that are not JSON, throw <see cref="GenerationErrorCode.InvalidRequest"/>.
    /// </summary>
    public string Format(IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, bool addAssistantPrompt, bool enableThinking = true)
    {
        if (_jinja is not null)
        {
            return FormatJinja(_jinja, messages, tools, addAssistantPrompt, enableThinking);
        }

        if (string.Equals(_fallback, PlainTemplate, StringComparison.OrdinalIgnoreCase))
        {
            return FormatPlain(messages, addAssistantPrompt);
        }

        // LLamaTemplate calls llama_chat_apply_template, a pure function of its inputs: safe from any thread.
        var template = new LLamaTemplate(_fallback) { AddAssistant = addAssistantPrompt };
        foreach (var message in messages)
        {
            template.Add(NormalizeRole(message.Role), message.Content ?? string.Empty);
        }

        return Encoding.UTF8.GetString(template.Apply());
    }

    private static string FormatJinja(ChatTemplate template, IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, bool addAssistantPrompt, bool enableThinking)
    {
        var request = new ChatTemplateRequest(messages.Select(ToTemplateMessage).ToList())
        {
            Tools = tools.Select(t => new ChatTemplateTool(t.Name, t.Description, t.Parameters?.GetRawText())).ToList(),
            AddGenerationPrompt = addAssistantPrompt,
            EnableThinking = enableThinking,
        };
        try
        {
            return template.Render(request);
        }
        catch (TemplateRaisedException e)
        {
            throw new GenerationException(GenerationErrorCode.TemplateRefused, e.Reason, GenerationField.Messages);
        }
        catch (TemplateException e)
        {
            throw new GenerationException(GenerationErrorCode.InvalidRequest, "The model's chat template cannot render these messages: " + e.Message, GenerationField.Messages);
        }
        catch (FormatException e)
        {
            throw ArgumentsNotJson(messages, e.Message);
        }
    }

    /// <summary>
    /// The refusal of tool-call arguments that are not JSON (a template that takes them as objects), naming the first
    /// such call of <paramref name="messages"/>: the template reads the calls in order, so it is the one that failed.
    /// </summary>
    internal static GenerationException ArgumentsNotJson(IReadOnlyList<ChatTurn> messages, string message)
    {
        for (var m = 0; m < messages.Count; m++)
        {
            var calls = messages[m].ToolCalls ?? [];
            for (var c = 0; c < calls.Count; c++)
            {
                if (!IsJson(calls[c].Arguments))
                {
                    return new GenerationException(GenerationErrorCode.InvalidRequest, message, GenerationField.ToolCallArguments) { FieldIndex = m, CallIndex = c };
                }
            }
        }

        return new GenerationException(GenerationErrorCode.InvalidRequest, message, GenerationField.Messages);
    }

    private static bool IsJson(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static ChatTemplateMessage ToTemplateMessage(ChatTurn turn) => new(turn.Role.ToLowerInvariant(), turn.Content)
    {
        ToolCalls = turn.ToolCalls?.Select(c => new ChatTemplateToolCall(c.Id, c.Name, c.Arguments)).ToList(),
        ToolCallId = turn.ToolCallId,
        Name = turn.Name,
        ReasoningContent = turn.ReasoningContent,
    };

    /// <summary>OpenAI's "developer" role is a system message to a chat template.</summary>
    internal static string NormalizeRole(string role) =>
        string.Equals(role, "developer", StringComparison.OrdinalIgnoreCase) ? "system" : role.ToLowerInvariant();

    private static string FormatPlain(IReadOnlyList<ChatTurn> messages, bool addAssistantPrompt)
    {
        var builder = new StringBuilder();
        foreach (var message in messages)
        {
            var role = NormalizeRole(message.Role);
            if (role == "system")
            {
                builder.Append(message.Content).Append("\n\n");
                continue;
            }

            // An answer follows "Assistant:" verbatim, as the model generated it after the generation prompt
            // (usually with a leading space): the re-rendered history then matches the session's KV cache exactly.
            builder.Append(role == "assistant" ? "Assistant:" : "User: ").Append(message.Content).Append('\n');
        }

        if (addAssistantPrompt)
        {
            builder.Append("Assistant:");
        }

        return builder.ToString();
    }
}
