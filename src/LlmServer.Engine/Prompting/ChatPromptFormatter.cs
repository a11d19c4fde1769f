using System.Text;
using LLama;
using LLama.Native;
using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Prompting;

/// <summary>
/// Renders chat messages into prompt text: with the model's own <c>tokenizer.chat_template</c> when it has one,
/// otherwise with the configured fallback (a llama.cpp built-in template name, or <c>plain</c>).
/// </summary>
internal sealed class ChatPromptFormatter
{
    public const string PlainTemplate = "plain";

    private readonly SafeLlamaModelHandle _model;
    private readonly bool _useModelTemplate;
    private readonly string _fallback;

    public ChatPromptFormatter(SafeLlamaModelHandle model, bool modelHasTemplate, string fallbackTemplate, bool forceFallback)
    {
        _model = model;
        _useModelTemplate = modelHasTemplate && !forceFallback;
        _fallback = fallbackTemplate;
    }

    /// <summary>The template in use, for /props and logs.</summary>
    public string TemplateName => _useModelTemplate ? "model" : _fallback;

    public string Format(IReadOnlyList<ChatTurn> messages, bool addAssistantPrompt)
    {
        if (!_useModelTemplate && string.Equals(_fallback, PlainTemplate, StringComparison.OrdinalIgnoreCase))
        {
            return FormatPlain(messages, addAssistantPrompt);
        }

        // LLamaTemplate calls llama_chat_apply_template, a pure function of its inputs: safe from any thread.
        var template = _useModelTemplate ? new LLamaTemplate(_model) : new LLamaTemplate(_fallback);
        template.AddAssistant = addAssistantPrompt;
        foreach (var message in messages)
        {
            template.Add(NormalizeRole(message.Role), message.Content ?? string.Empty);
        }

        return Encoding.UTF8.GetString(template.Apply());
    }

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
