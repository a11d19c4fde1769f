using System.Text.RegularExpressions;

namespace LlmServer.Engine.Tools;

/// <summary>How a model writes tool calls: detected from its chat template's source, never from its name.</summary>
public enum ToolCallFormat
{
    /// <summary>
    /// Templates without native tools: the tools and the instruction to answer in JSON go into the system
    /// message, and the model answers <c>{"tool_call": {...}}</c>, <c>{"tool_calls": [...]}</c> or
    /// <c>{"response": "..."}</c> (llama.cpp's generic format).
    /// </summary>
    Generic,

    /// <summary>Hermes 2 Pro, Qwen 2.5, Qwen 3: <c>&lt;tool_call&gt;{"name": ..., "arguments": ...}&lt;/tool_call&gt;</c>.</summary>
    Hermes,

    /// <summary>Llama 3.1 to 3.3: a JSON call <c>{"name": ..., "parameters": ...}</c>, or after <c>&lt;|python_tag|&gt;</c>.</summary>
    Llama3,

    /// <summary>Mistral Nemo: <c>[TOOL_CALLS][{"name": ..., "arguments": ..., "id": ...}]</c>; ids of 9 alphanumerics.</summary>
    MistralNemo,

    /// <summary>Mistral Small 3.2, Devstral, Ministral: <c>[TOOL_CALLS]name[ARGS]{...}</c>; ids of 9 alphanumerics.</summary>
    Mistral,

    /// <summary>functionary v3.2: <c>&gt;&gt;&gt;name\n{...}</c>, with the recipient <c>all</c> for text.</summary>
    FunctionaryV32,
}

/// <summary>Detects <see cref="ToolCallFormat"/> from a template's source text, and names it for /props.</summary>
public static partial class ToolCallFormats
{
    /// <summary>The format a template writes calls in; <see cref="ToolCallFormat.Generic"/> without a template.</summary>
    public static ToolCallFormat Detect(string? templateSource)
    {
        if (string.IsNullOrEmpty(templateSource))
        {
            return ToolCallFormat.Generic;
        }

        if (Has(templateSource, ">>>all"))
        {
            return ToolCallFormat.FunctionaryV32;
        }

        if (Has(templateSource, ToolCallMarkers.ToolCalls))
        {
            return Has(templateSource, ToolCallMarkers.Args) ? ToolCallFormat.Mistral : ToolCallFormat.MistralNemo;
        }

        // Hermes only where a JSON call object follows the tag: Qwen3-Coder (<function=name>), GLM and Laguna
        // (name<arg_key>) and MiniMax (<invoke name=>) write other syntaxes inside <tool_call>; parsing them as Hermes
        // would contradict what the template taught the model.
        if (WritesHermesCalls(templateSource))
        {
            return ToolCallFormat.Hermes;
        }

        if (Has(templateSource, "<|start_header_id|>ipython<|end_header_id|>") || (Has(templateSource, ToolCallMarkers.PythonTag) && Has(templateSource, "ipython")))
        {
            // functionary v3.1 is Llama-based but writes <function=name>: not Llama 3's JSON calls.
            return Has(templateSource, "<function=") ? ToolCallFormat.Generic : ToolCallFormat.Llama3;
        }

        return ToolCallFormat.Generic;
    }

    /// <summary>The name /props shows.</summary>
    public static string Name(ToolCallFormat format) => format switch
    {
        ToolCallFormat.Hermes => "hermes",
        ToolCallFormat.Llama3 => "llama3",
        ToolCallFormat.MistralNemo => "mistral-nemo",
        ToolCallFormat.Mistral => "mistral",
        ToolCallFormat.FunctionaryV32 => "functionary-v3.2",
        _ => "generic",
    };

    /// <summary>Mistral's templates refuse any call id that is not 9 alphanumeric characters (<see cref="ShortToolCallIds"/>).</summary>
    public static bool WantsShortIds(ToolCallFormat format) => format is ToolCallFormat.Mistral or ToolCallFormat.MistralNemo;

    /// <summary>
    /// Whether a call id the model wrote is the one the API reports: Mistral's templates render the call ids (Nemo's
    /// <c>"id"</c>, Small 3.2's <c>[CALL_ID]</c>), so the id the model wrote, echoed back by the client, renders the
    /// next prompt as the model generated it and the cached KV stays warm past the call. It must be nine
    /// alphanumerics, as those templates require; other formats' calls get the engine's ids.
    /// </summary>
    internal static bool KeepsModelId(ToolCallFormat format, string id) => WantsShortIds(format) && ShortToolCallIds.IsShort(id);

    private static bool Has(string source, string marker) => source.Contains(marker, StringComparison.Ordinal);

    /// <summary>
    /// Whether some <c>&lt;tool_call&gt;</c> of the template opens a JSON object holding the keys <c>"name"</c> and
    /// <c>"arguments"</c>, in either order, before its <c>&lt;/tool_call&gt;</c>: the object may be written across
    /// several Jinja outputs, with statements between (Hermes 2 Pro sets <c>tool_call</c> to its function first).
    /// </summary>
    private static bool WritesHermesCalls(string source)
    {
        foreach (Match call in HermesCall().Matches(source))
        {
            var body = call.Groups["body"].Value;
            if (NameKey().IsMatch(body) && ArgumentsKey().IsMatch(body))
            {
                return true;
            }
        }

        return false;
    }

    // <tool_call>, then what separates it from a JSON object's brace in template source (blanks, escaped newlines,
    // string quotes, concatenation, Jinja delimiters, whole statements and comments), then the object up to the
    // closing tag. The brace must not open Jinja markup. A statement or comment ends at its first closing
    // delimiter and the separators are read once (atomic): a run of statements has one reading, not exponentially many.
    // No part reads past the next tag, so a source of many unclosed tags is read in one pass, not once a tag.
    [GeneratedRegex(@"<tool_call>(?>(?:\s|\\n|[""'+~]|\{\{-?|-?\}\}|\{%(?:(?!%\}|<tool_call>)[\s\S])*%\}|\{#(?:(?!#\}|<tool_call>)[\s\S])*#\})*)\{(?![{%#])(?<body>(?:(?!</?tool_call>)[\s\S])*?)</tool_call>", RegexOptions.CultureInvariant)]
    private static partial Regex HermesCall();

    // A key as a template writes it in a string literal: quoted (the quotes maybe escaped), then a colon.
    [GeneratedRegex(@"\\?""name\\?""\s*:", RegexOptions.CultureInvariant)]
    private static partial Regex NameKey();

    [GeneratedRegex(@"\\?""arguments\\?""\s*:", RegexOptions.CultureInvariant)]
    private static partial Regex ArgumentsKey();
}
