using System.Globalization;
using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Grammars;
using LlmServer.Engine.Models;

namespace LlmServer.OpenAi;

/// <summary>
/// Checks OpenAI request fields and maps them onto the engine's <see cref="GenerationRequest"/>. Every refusal is
/// a 400 naming the field; the ranges are the engine's (<see cref="GenerationLimits"/>), only the names are
/// OpenAI's. Absent sampling fields keep the engine's defaults.
/// </summary>
internal static class OpenAiRequestMapper
{
    /// <summary>Prompts in one legacy completion request (the API's own limit).</summary>
    public const int MaxPrompts = 16;

    /// <summary>The legacy completions API reports at most 5 alternatives per token.</summary>
    private static readonly ValueRange CompletionLogprobs = new(0, 5);

    /// <summary>Where a schema the grammar cannot enforce is reported, in OpenAI's parameter naming.</summary>
    private const string SchemaParam = "response_format.json_schema.schema";

    /// <summary>The loaded model, when <paramref name="requested"/> names it (or names nothing).</summary>
    public static ModelInfo ResolveModel(ITextGenerator generator, string? requested)
    {
        var model = generator.Model ?? throw NotReady(generator.State);
        if (!string.IsNullOrEmpty(requested) && !string.Equals(requested, model.Id, StringComparison.Ordinal))
        {
            throw ModelNotFound(requested);
        }

        return model;
    }

    public static OpenAiException ModelNotFound(string id) => new(
        StatusCodes.Status404NotFound,
        OpenAiErrors.InvalidRequestError,
        $"The model '{id}' does not exist. This server serves one model; GET /v1/models names it.",
        "model",
        "model_not_found");

    public static OpenAiException NotReady(EngineState state) => new(
        StatusCodes.Status503ServiceUnavailable,
        OpenAiErrors.ServerError,
        state == EngineState.Loading ? "The model is loading; try again shortly." : $"The server is not serving ({state.ToString().ToLowerInvariant()}).",
        code: "unavailable");

    public static GenerationRequest MapChat(ChatCompletionRequest request, ModelInfo model, string requestId, RequestPriority priority = RequestPriority.Interactive)
    {
        var messages = request.Messages ?? throw OpenAiException.InvalidField("messages", "'messages' is required.");
        if (messages.Count == 0)
        {
            throw OpenAiException.InvalidField("messages", "'messages' must contain at least one message.");
        }

        var turns = new ChatTurn[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw OpenAiException.InvalidField($"messages[{i}]", $"messages[{i}] must be an object.");
            turns[i] = MapMessage(message, i);
        }

        RequireToolAnswers(turns);

        if (InRange(request.TopLogprobs, "top_logprobs", GenerationLimits.TopLogProbs) is not null)
        {
            if (request.Logprobs != true)
            {
                throw OpenAiException.InvalidField("top_logprobs", "'top_logprobs' requires 'logprobs' to be true.");
            }
        }

        return new GenerationRequest
        {
            Messages = turns,
            Sampling = MapSampling(request),
            MaxTokens = MaxTokens(request.MaxCompletionTokens, "max_completion_tokens", model) ?? MaxTokens(request.MaxTokens, "max_tokens", model),
            Stop = Stop(request.Stop),
            IgnoreEos = request.IgnoreEos ?? false,
            Grammar = Grammar(request.ResponseFormat),
            Choices = Choices(request.N),
            LogProbs = request.Logprobs ?? false,
            TopLogProbs = request.TopLogprobs ?? 0,
            RequestId = requestId,
            Priority = priority,
            Tools = Tools(request.Tools),
            ToolChoice = ToolChoice(request.ToolChoice),
            ParallelToolCalls = request.ParallelToolCalls ?? true,
            SplitReasoning = SplitReasoning(request.ReasoningFormat),
            EnableThinking = EnableThinking(request.ChatTemplateKwargs),
        };
    }

    /// <summary>llama-server's <c>chat_template_kwargs.enable_thinking</c> (true unless given); the other variables are not passed on.</summary>
    private static bool EnableThinking(JsonElement? kwargs)
    {
        if (kwargs is not { } value || value.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw OpenAiException.InvalidType("chat_template_kwargs", "an object");
        }

        if (!value.TryGetProperty("enable_thinking", out var enable))
        {
            return true;
        }

        return enable.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw OpenAiException.InvalidType("chat_template_kwargs.enable_thinking", "a boolean"),
        };
    }

    /// <summary>llama-server's <c>reasoning_format</c>: its default (<c>auto</c>, the DeepSeek shape) splits, <c>none</c> does not.</summary>
    private static bool SplitReasoning(string? format) => format switch
    {
        null or "auto" or "deepseek" => true,
        "none" => false,
        _ => throw OpenAiException.InvalidField(
            "reasoning_format",
            $"Invalid value for 'reasoning_format': '{format}'. Supported values are 'auto', 'deepseek' and 'none'."),
    };

    private static ChatTurn MapMessage(ChatMessage message, int i)
    {
        var role = message.Role switch
        {
            "system" or "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            null => throw OpenAiException.InvalidField($"messages[{i}].role", $"messages[{i}].role is required."),
            _ => throw OpenAiException.InvalidField(
                $"messages[{i}].role",
                $"Invalid value for messages[{i}].role: '{message.Role}'. Supported roles are system, developer, user, assistant and tool."),
        };
        if (message.Content is null && role != "assistant")
        {
            throw OpenAiException.InvalidField($"messages[{i}].content", $"messages[{i}].content is required.");
        }

        if (role == "tool" && string.IsNullOrEmpty(message.ToolCallId))
        {
            throw OpenAiException.InvalidField($"messages[{i}].tool_call_id", $"messages[{i}].tool_call_id is required on a tool message.");
        }

        if (message.ToolCalls is { Count: > 0 } && role != "assistant")
        {
            throw OpenAiException.InvalidField($"messages[{i}].tool_calls", $"messages[{i}].tool_calls is only allowed on assistant messages.");
        }

        var calls = message.ToolCalls is { Count: > 0 } wire ? new ToolCall[wire.Count] : null;
        for (var c = 0; calls is not null && c < calls.Length; c++)
        {
            var param = $"messages[{i}].tool_calls[{c}]";
            var call = message.ToolCalls![c] ?? throw OpenAiException.InvalidField(param, $"{param} must be an object.");
            if (call.Type is not (null or "function"))
            {
                throw OpenAiException.InvalidField(param + ".type", $"{param}.type must be 'function'.");
            }

            var function = call.Function ?? throw OpenAiException.InvalidField(param + ".function", $"{param}.function is required.");
            if (string.IsNullOrEmpty(function.Name))
            {
                throw OpenAiException.InvalidField(param + ".function.name", $"{param}.function.name is required.");
            }

            if (string.IsNullOrEmpty(call.Id))
            {
                throw OpenAiException.InvalidField(param + ".id", $"{param}.id is required: the tool message answering the call names it.");
            }

            calls[c] = new ToolCall(call.Id, function.Name, function.Arguments ?? "{}");
        }

        return new ChatTurn(role, message.Content ?? (calls is null ? string.Empty : null))
        {
            ToolCalls = calls,
            ToolCallId = role == "tool" ? message.ToolCallId : null,
            Name = message.Name,
            ReasoningContent = role == "assistant" ? message.ReasoningContent : null,
        };
    }

    /// <summary>
    /// As OpenAI requires (<see cref="ToolCallAnswers"/>): the tool messages right after an assistant message with
    /// <c>tool_calls</c> answer each of its calls, once, and only its calls, the last message's calls too.
    /// </summary>
    private static void RequireToolAnswers(ChatTurn[] turns)
    {
        var answers = new ToolCallAnswers();
        var caller = 0;
        for (var i = 0; i < turns.Length; i++)
        {
            if (turns[i].Role == "tool")
            {
                if (!answers.Answer(turns[i].ToolCallId!))
                {
                    throw OpenAiException.InvalidField(
                        $"messages[{i}].tool_call_id",
                        $"messages[{i}].tool_call_id: '{turns[i].ToolCallId}' answers no call awaiting its answer. Tool messages follow an assistant message with 'tool_calls' and answer each of its calls once.");
                }

                continue;
            }

            RequireAnswered(answers, caller, $"before messages[{i}]");
            var calls = turns[i].ToolCalls ?? [];
            for (var c = 0; c < calls.Count; c++)
            {
                if (!answers.Expect(calls[c].Id, calls[c].Id))
                {
                    throw OpenAiException.InvalidField(
                        $"messages[{i}].tool_calls[{c}].id",
                        $"messages[{i}].tool_calls[{c}].id: '{calls[c].Id}' is the id of an earlier call in this message. Each call needs its own id: the tool message answering it names it.");
                }
            }

            caller = i;
        }

        RequireAnswered(answers, caller, "at the end of 'messages'");
    }

    private static void RequireAnswered(ToolCallAnswers answers, int caller, string where)
    {
        if (answers.Unanswered is { } unanswered)
        {
            throw OpenAiException.InvalidField(
                $"messages[{caller}].tool_calls",
                $"messages[{caller}].tool_calls: no tool message answers {unanswered} {where}. An assistant message with 'tool_calls' must be followed by tool messages answering each 'tool_call_id'.");
        }
    }

    private static IReadOnlyList<ToolDefinition> Tools(IReadOnlyList<ChatTool?>? tools)
    {
        if (tools is null)
        {
            return [];
        }

        var definitions = new ToolDefinition[tools.Count];
        for (var i = 0; i < tools.Count; i++)
        {
            var param = $"tools[{i}]";
            var tool = tools[i] ?? throw OpenAiException.InvalidField(param, $"{param} must be an object.");
            if (tool.Type != "function")
            {
                throw OpenAiException.InvalidField(param + ".type", $"Invalid value for {param}.type: '{tool.Type}'. Only 'function' tools are supported.");
            }

            var function = tool.Function ?? throw OpenAiException.InvalidField(param + ".function", $"{param}.function is required.");
            if (string.IsNullOrEmpty(function.Name))
            {
                throw OpenAiException.InvalidField(param + ".function.name", $"{param}.function.name is required.");
            }

            if (function.Parameters is { ValueKind: not JsonValueKind.Object and not JsonValueKind.Null })
            {
                throw OpenAiException.InvalidField(param + ".function.parameters", $"{param}.function.parameters must be a JSON schema object.");
            }

            definitions[i] = new ToolDefinition(function.Name, function.Description, function.Parameters is { ValueKind: JsonValueKind.Object } schema ? schema : null);
        }

        return definitions;
    }

    /// <summary>
    /// <c>tool_choice</c>: none, auto, required, or an object naming a function, as chat completions nest it
    /// (<c>{"type":"function","function":{"name":...}}</c>) or, with <paramref name="flat"/>, as the Responses API
    /// writes it (<c>{"type":"function","name":...}</c>).
    /// </summary>
    public static ToolChoice ToolChoice(JsonElement? choice, bool flat = false)
    {
        const string Param = "tool_choice";
        switch (choice)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return Engine.Generation.ToolChoice.Auto;
            case { ValueKind: JsonValueKind.String } text:
                return text.GetString() switch
                {
                    "auto" => Engine.Generation.ToolChoice.Auto,
                    "none" => Engine.Generation.ToolChoice.None,
                    "required" => Engine.Generation.ToolChoice.Required,
                    var other => throw OpenAiException.InvalidField(Param, $"Invalid value for 'tool_choice': '{other}'. Supported values are none, auto, required, or an object naming a function."),
                };
            case { ValueKind: JsonValueKind.Object } named
                when named.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "function"
                    && (flat ? named : named.TryGetProperty("function", out var function) ? function : default) is { ValueKind: JsonValueKind.Object } holder
                    && holder.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && name.GetString() is { Length: > 0 } functionName:
                return Engine.Generation.ToolChoice.Function(functionName);
            default:
                throw OpenAiException.InvalidField(Param, flat
                    ? "'tool_choice' must be none, auto, required, or {\"type\": \"function\", \"name\": ...}."
                    : "'tool_choice' must be none, auto, required, or {\"type\": \"function\", \"function\": {\"name\": ...}}.");
        }
    }

    private static Dictionary<int, float>? LogitBias(Dictionary<string, float>? bias)
    {
        if (bias is null || bias.Count == 0)
        {
            return null;
        }

        var result = new Dictionary<int, float>(bias.Count);
        foreach (var (key, value) in bias)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var token))
            {
                throw OpenAiException.InvalidField("logit_bias", $"Invalid key in 'logit_bias': '{key}'. Keys are token ids.");
            }

            if (!GenerationLimits.LogitBias.Contains(value))
            {
                throw OpenAiException.InvalidField("logit_bias", $"Invalid value in 'logit_bias' for token {token}: {value}. Biases are {GenerationLimits.LogitBias.Describe()}.");
            }

            result[token] = value;
        }

        return result;
    }

    /// <summary>The prompts of a completion request, each checked.</summary>
    public static IReadOnlyList<string> Prompts(CompletionRequest request)
    {
        var prompts = request.Prompt ?? throw OpenAiException.InvalidField("prompt", "'prompt' is required.");
        if (prompts.Count is 0 or > MaxPrompts)
        {
            throw OpenAiException.InvalidField("prompt", $"'prompt' must hold between 1 and {MaxPrompts} strings.");
        }

        if (!string.IsNullOrEmpty(request.Suffix))
        {
            throw OpenAiException.InvalidField("suffix", "'suffix' (fill-in-the-middle) is not supported.");
        }

        // OpenAI would add the prompt tokens' log-probabilities, which needs logits over the whole prompt; llama.cpp's
        // server refuses 'echo' altogether ("Only no echo is supported"). Refused, rather than answered short.
        if (request.Echo == true && request.Logprobs is not null)
        {
            throw OpenAiException.InvalidField(
                "echo",
                "'echo' with 'logprobs' is not supported: the prompt's tokens get no log-probabilities on this server. Send 'echo' or 'logprobs', not both.");
        }

        if (request.BestOf is { } bestOf && bestOf != (request.N ?? 1))
        {
            throw OpenAiException.InvalidField("best_of", "'best_of' is only supported equal to 'n'.");
        }

        return prompts;
    }

    public static GenerationRequest MapCompletion(CompletionRequest request, string prompt, int prompts, ModelInfo model, string requestId, RequestPriority priority = RequestPriority.Interactive)
    {
        InRange(request.Logprobs, "logprobs", CompletionLogprobs);
        return new GenerationRequest
        {
            Prompt = prompt,
            Sampling = MapSampling(request),
            MaxTokens = MaxTokens(request.MaxTokens, "max_tokens", model),
            Stop = Stop(request.Stop),
            IgnoreEos = request.IgnoreEos ?? false,
            Choices = Choices(request.N),
            AdmittedTogether = prompts,
            LogProbs = request.Logprobs is not null,
            TopLogProbs = request.Logprobs ?? 0,
            RequestId = requestId,
            Priority = priority,
        };
    }

    private static SamplingOptions MapSampling(SamplingRequest request)
    {
        var defaults = new SamplingOptions();
        return new SamplingOptions
        {
            Temperature = InRange(request.Temperature, "temperature", GenerationLimits.Temperature) ?? defaults.Temperature,
            TopP = TopP(request.TopP) ?? defaults.TopP,
            TopK = InRange(request.TopK, "top_k", GenerationLimits.TopK) ?? defaults.TopK,
            MinP = InRange(request.MinP, "min_p", GenerationLimits.MinP) ?? defaults.MinP,
            RepeatPenalty = InRange(request.RepeatPenalty, "repeat_penalty", GenerationLimits.RepeatPenalty) ?? defaults.RepeatPenalty,
            FrequencyPenalty = InRange(request.FrequencyPenalty, "frequency_penalty", GenerationLimits.Penalty) ?? defaults.FrequencyPenalty,
            PresencePenalty = InRange(request.PresencePenalty, "presence_penalty", GenerationLimits.Penalty) ?? defaults.PresencePenalty,
            PenaltyLastN = defaults.PenaltyLastN,
            LogitBias = LogitBias(request.LogitBias),

            // OpenAI seeds are 64-bit; the sampler takes 32 bits, so the low half is used.
            Seed = request.Seed is { } seed ? SamplingOptions.SeedFrom(seed) : null,
        };
    }

    public static int? MaxTokens(int? value, string param, ModelInfo model)
    {
        if (value is not { } maxTokens)
        {
            return null;
        }

        InRange(maxTokens, param, GenerationLimits.MaxTokens);

        if (model.SlotContextLength > 0 && maxTokens > model.SlotContextLength)
        {
            throw OpenAiException.InvalidField(
                param,
                $"'{param}' is too large: {maxTokens}. This model's context holds at most {model.SlotContextLength} tokens, prompt included.");
        }

        return maxTokens;
    }

    public static IReadOnlyList<string> Stop(IReadOnlyList<string>? stop)
    {
        if (stop is null)
        {
            return [];
        }

        if (stop.Count > GenerationLimits.MaxStopSequences)
        {
            throw OpenAiException.InvalidField("stop", $"'stop' may hold at most {GenerationLimits.MaxStopSequences} sequences.");
        }

        if (stop.Any(string.IsNullOrEmpty))
        {
            throw OpenAiException.InvalidField("stop", "'stop' sequences must not be empty.");
        }

        return stop;
    }

    private static int Choices(int? n) => InRange(n, "n", GenerationLimits.Choices) ?? 1;

    private static string? Grammar(ResponseFormat? format) => format is null ? null : format.Type switch
    {
        null or "text" => null,
        "json_object" => JsonGrammar.AnyObject,
        "json_schema" => format.JsonSchema?.Schema is { } schema
            ? SchemaGrammar(schema, SchemaParam)
            : throw OpenAiException.InvalidField("response_format.json_schema", "'response_format.json_schema.schema' is required for type json_schema."),
        _ => throw OpenAiException.InvalidField(
            "response_format.type",
            $"Invalid value for 'response_format.type': '{format.Type}'. Supported values are text, json_object and json_schema."),
    };

    /// <summary>The grammar that enforces <paramref name="schema"/>; a schema it cannot enforce is a 400 on <paramref name="param"/>.</summary>
    public static string SchemaGrammar(JsonElement schema, string param)
    {
        try
        {
            return JsonGrammar.FromSchema(schema);
        }
        catch (ArgumentException e)
        {
            throw OpenAiException.InvalidField(param, $"Invalid schema for {param[..param.IndexOf('.', StringComparison.Ordinal)]}: " + e.Message);
        }
    }

    /// <summary>As the engine: 0 would leave no token to sample.</summary>
    public static float? TopP(float? value) => InRange(value, "top_p", GenerationLimits.TopP);

    /// <summary>The value when it is absent or within <paramref name="range"/>; otherwise a 400 naming <paramref name="param"/>.</summary>
    public static float? InRange(float? value, string param, ValueRange range) =>
        value is not { } v || range.Contains(v) ? value : throw OutOfRange(param, v.ToString(CultureInfo.InvariantCulture), range);

    /// <inheritdoc cref="InRange(float?, string, ValueRange)"/>
    public static int? InRange(int? value, string param, ValueRange range) =>
        value is not { } v || range.Contains(v) ? value : throw OutOfRange(param, v.ToString(CultureInfo.InvariantCulture), range);

    private static OpenAiException OutOfRange(string param, string value, ValueRange range) =>
        OpenAiException.InvalidField(param, $"Invalid value for '{param}': {value}. It must be {range.Describe()}.");
}
