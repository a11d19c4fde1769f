namespace LlmServer.Templating.Chat;

/// <summary>How a chat template is rendered around the model's vocabulary.</summary>
public sealed record ChatTemplateOptions
{
    /// <summary>The model's BOS token text (<c>bos_token</c> in the template).</summary>
    public string BosToken { get; init; } = string.Empty;

    /// <summary>The model's EOS token text (<c>eos_token</c> in the template).</summary>
    public string EosToken { get; init; } = string.Empty;

    /// <summary>
    /// Whether tokenization adds BOS by itself: then a BOS the template wrote at the very start is removed, as
    /// llama.cpp does, so that the prompt does not start with two.
    /// </summary>
    public bool AddBos { get; init; } = true;

    /// <summary>Whether tokenization adds EOS by itself: then an EOS the template wrote at the very end is removed.</summary>
    public bool AddEos { get; init; }

    /// <summary>The clock behind <c>strftime_now</c>, <c>datetime</c> and <c>date_string</c>.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;
}

/// <summary>
/// A model's Jinja chat template, parsed once, rendered for OpenAI-shaped requests with llama.cpp's adjustments
/// around the template (llama.cpp 815a2a59): a system message folded into the first user turn where the template
/// has no system role, <c>developer</c> read as <c>system</c>, tool-call arguments passed as objects where the
/// template reads them as objects, a leading BOS removed.
/// </summary>
public sealed class ChatTemplate
{
    private readonly JinjaTemplate _template;
    private readonly ChatTemplateOptions _options;
    private readonly TemplateFamily _family;

    private ChatTemplate(JinjaTemplate template, ChatTemplateOptions options)
    {
        _template = template;
        _options = options;
        _family = TemplateFamily.Detect(template.Source);
        Capabilities = ChatTemplateCapabilities.Probe(template);
    }

    /// <summary>The template text as the model (or file) gave it, before llama.cpp's compatibility patches.</summary>
    public string Source { get; private init; } = string.Empty;

    /// <summary>What the template supports, found by rendering probe conversations (as llama.cpp does).</summary>
    public ChatTemplateCapabilities Capabilities { get; }

    /// <summary>Parses a template; a syntax error is a <see cref="TemplateException"/>.</summary>
    public static ChatTemplate Parse(string source, ChatTemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        var template = JinjaTemplate.Parse(CompatibilityPatches.Apply(source));
        return new ChatTemplate(template, options ?? new ChatTemplateOptions()) { Source = source };
    }

    /// <summary>
    /// Renders the prompt. A template that refuses the request throws <see cref="TemplateRaisedException"/> with its
    /// message; other template failures throw <see cref="TemplateException"/>; malformed tool-call arguments (where
    /// the template needs them as objects) throw <see cref="FormatException"/>.
    /// </summary>
    public string Render(ChatTemplateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var messages = ChatTemplateAdjustments.BuildMessages(request.Messages, Capabilities, _family);
        var now = _options.Clock.GetLocalNow().DateTime;
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["bos_token"] = _options.BosToken,
            ["eos_token"] = _options.EosToken,
            ["enable_thinking"] = request.EnableThinking && Capabilities.SupportsThinking,

            // DeepSeek V3.1's original template reads only this name: without it, it never thinks. llama.cpp set it from
            // enable_thinking until its chat refactor (566059a26); since, it passes chat_template_kwargs on whole.
            ["thinking"] = request.EnableThinking && Capabilities.SupportsThinking,
            ["datetime"] = Strftime.Format(now, "%b %d %Y"),
            ["date_string"] = Strftime.Format(now, "%d %b %Y"),
        };
        if (request.Tools is { Count: > 0 } tools)
        {
            variables["tools"] = ChatTemplateAdjustments.BuildTools(tools);
        }

        // llama.cpp defines add_generation_prompt only when it is true.
        if (request.AddGenerationPrompt)
        {
            variables["add_generation_prompt"] = true;
        }

        var prompt = _template.Render(variables, _options.Clock);

        // Gemma 4 closes the model's turn after calls without reopening it; llama.cpp reopens it.
        if (_family.IsGemma4 && request.AddGenerationPrompt && prompt.EndsWith("<turn|>\n", StringComparison.Ordinal))
        {
            prompt += "<|turn>model\n";
        }
        if (_options.AddBos && _options.BosToken.Length > 0 && prompt.StartsWith(_options.BosToken, StringComparison.Ordinal))
        {
            prompt = prompt[_options.BosToken.Length..];
        }

        if (_options.AddEos && _options.EosToken.Length > 0 && prompt.EndsWith(_options.EosToken, StringComparison.Ordinal))
        {
            prompt = prompt[..^_options.EosToken.Length];
        }

        return prompt;
    }
}
