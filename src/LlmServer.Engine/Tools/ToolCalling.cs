using System.Text.RegularExpressions;
using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Tools;

/// <summary>
/// Tool calling for the loaded model: checks a request's tools, puts them into the prompt where the template
/// cannot, picks the grammar for its tool choice, and parses the output. The engine applies it to every request,
/// so every front end gets the same calls.
/// </summary>
internal sealed partial class ToolCalling(ToolCallFormat templateFormat, bool templateRendersTools, bool templateTakesParallelCalls = true)
{
    /// <summary>The call syntax the model is asked for: its template's own when the template renders tools, else the generic JSON form.</summary>
    public ToolCallFormat Format { get; } = templateRendersTools ? templateFormat : ToolCallFormat.Generic;

    /// <summary>Whether tools and tool history go to the template as they are (else <see cref="GenericToolPrompt"/> writes them).</summary>
    public bool TemplateRendersTools => templateRendersTools && Format != ToolCallFormat.Generic;

    /// <summary>Refuses a request whose tools or tool choice are malformed, naming the field in the engine's terms.</summary>
    public static void Validate(GenerationRequest request) =>
        Validate(request.Tools, request.ToolChoice, request.Grammar is not null);

    /// <summary>The checks of <see cref="Validate(GenerationRequest)"/> on a request's tool parts.</summary>
    public static void Validate(IReadOnlyList<ToolDefinition> tools, ToolChoice choice, bool hasGrammar)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < tools.Count; i++)
        {
            var tool = tools[i];
            if (string.IsNullOrEmpty(tool.Name) || !FunctionName().IsMatch(tool.Name))
            {
                throw Invalid($"The name of tool {i} must be 1 to 64 letters, digits, underscores, dots or dashes.", GenerationField.ToolName, i);
            }

            if (!names.Add(tool.Name))
            {
                throw Invalid($"Tool {i}: the function '{tool.Name}' is defined twice.", GenerationField.ToolName, i);
            }

            if (tool.Parameters is { } parameters && parameters.ValueKind != System.Text.Json.JsonValueKind.Object)
            {
                throw Invalid($"The parameters of tool {i} must be a JSON schema object.", GenerationField.ToolParameters, i);
            }
        }

        if (choice.Mode is ToolChoiceMode.Required or ToolChoiceMode.Function && tools.Count == 0)
        {
            throw Invalid("The tool choice requires a call, but no tools are given.", GenerationField.ToolChoice);
        }

        if (choice.Mode == ToolChoiceMode.Function && !names.Contains(choice.FunctionName ?? string.Empty))
        {
            throw Invalid($"The tool choice names the function '{choice.FunctionName}', which is not among the tools.", GenerationField.ToolChoice);
        }

        if (choice.Mode is ToolChoiceMode.Required or ToolChoiceMode.Function && hasGrammar)
        {
            throw Invalid("A required tool call cannot be combined with a grammar or a JSON response format.", GenerationField.ToolChoice);
        }
    }

    /// <summary>
    /// The request as the engine runs it: the messages the template renders (the generic tool prompt written in, or
    /// the call ids a Mistral template would refuse renamed) and, where the tool choice calls for one, the grammar
    /// (lazy for <c>auto</c>). Null when the request involves no tools.
    /// </summary>
    public PreparedToolRequest? Prepare(GenerationRequest request)
    {
        var messages = request.Messages;
        if (messages is null)
        {
            return null;
        }

        var offered = request.Tools.Count > 0 && request.ToolChoice.Mode != ToolChoiceMode.None;

        // A template that takes one call a message (Llama 3.x raises on two) gets a history of several calls one by
        // one, and the model is held to one call a turn, as llama.cpp turns parallel calls off for it.
        var singleCalls = TemplateRendersTools && !templateTakesParallelCalls;
        var parallelCalls = request.ParallelToolCalls && !singleCalls;
        var templateMessages = singleCalls ? OneCallPerMessage(messages) : messages;
        var promptMessages = !TemplateRendersTools ? GenericToolPrompt.Apply(messages, request.Tools, request.ToolChoice, request.ParallelToolCalls)
            : ToolCallFormats.WantsShortIds(Format) ? ShortToolCallIds.ForTemplate(templateMessages)
            : templateMessages;
        if (!offered)
        {
            return ReferenceEquals(promptMessages, messages) ? null : new PreparedToolRequest(request, promptMessages, [], null);
        }

        var prepared = request;
        if (request.Grammar is null)
        {
            try
            {
                var grammar = ToolGrammar.Build(Format, request.Tools, request.ToolChoice, parallelCalls);
                prepared = request with { Grammar = grammar!.Grammar, GrammarTriggers = grammar.TriggerPatterns, GrammarTriggerWords = grammar.TriggerWords };
            }
            catch (ArgumentException e)
            {
                // Under auto the calls stay possible, unconstrained; only a required call must be enforced.
                if (request.ToolChoice.Mode != ToolChoiceMode.Auto)
                {
                    throw e is ToolSchemaException schema
                        ? Invalid(e.Message, GenerationField.ToolParameters, schema.ToolIndex)
                        : Invalid(e.Message, GenerationField.Tools);
                }
            }
        }

        var toolNames = request.ToolChoice.Mode == ToolChoiceMode.Function ? [request.ToolChoice.FunctionName!] : request.Tools.Select(t => t.Name);
        var stage = new ToolCallStage(request.Choices, Format, toolNames, parallelCalls, CallIds(messages).Concat(CallIds(promptMessages)));
        return new PreparedToolRequest(prepared, promptMessages, TemplateRendersTools ? request.Tools : [], stage);
    }

    /// <summary>
    /// Each assistant message of several calls as that many messages of one call (its text and reasoning on the
    /// first), in order; the same messages when none has more than one.
    /// </summary>
    internal static IReadOnlyList<ChatTurn> OneCallPerMessage(IReadOnlyList<ChatTurn> messages) =>
        messages.All(m => m.ToolCalls is not { Count: > 1 })
            ? messages
            : [.. messages.SelectMany(m => m.ToolCalls is { Count: > 1 } calls
                ? calls.Select((call, i) => m with { Content = i == 0 ? m.Content : null, ReasoningContent = i == 0 ? m.ReasoningContent : null, ToolCalls = [call] })
                : [m])];

    /// <summary>Every call id in <paramref name="messages"/>: of the assistants' calls and of the tool messages answering them.</summary>
    internal static IEnumerable<string> CallIds(IReadOnlyList<ChatTurn> messages) =>
        messages.SelectMany(m => (m.ToolCalls ?? []).Select(c => c.Id).Append(m.ToolCallId ?? string.Empty)).Where(id => id.Length > 0);

    private static GenerationException Invalid(string message, GenerationField field, int? index = null) =>
        new(GenerationErrorCode.InvalidRequest, message, field) { FieldIndex = index };

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,64}$")]
    private static partial Regex FunctionName();
}

/// <summary>The engine's tool checks for the front ends, to run on their own request before anything else.</summary>
public static class ToolRequestChecks
{
    /// <summary>Refuses malformed tools or tool choice, as a <see cref="GenerationException"/> naming the field in the engine's terms.</summary>
    public static void Validate(IReadOnlyList<ToolDefinition> tools, ToolChoice choice, bool hasGrammar) =>
        ToolCalling.Validate(tools, choice, hasGrammar);
}

/// <summary>
/// A request ready for the scheduler, the messages and tools its template renders (no tools where they went into
/// the messages in the generic form), and the parser of its output.
/// </summary>
internal sealed record PreparedToolRequest(GenerationRequest Request, IReadOnlyList<ChatTurn> PromptMessages, IReadOnlyList<ToolDefinition> TemplateTools, ToolCallStage? Stage);
