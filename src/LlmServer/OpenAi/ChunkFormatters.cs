using System.Text.Json;
using LlmServer.Engine.Generation;

namespace LlmServer.OpenAi;

/// <summary>
/// Writes the streamed chunks of one response. The per-token path writes pre-encoded names and values with
/// <see cref="Utf8JsonWriter"/>; only log-probabilities, usage and errors go through the serializer.
/// </summary>
internal abstract class ChunkFormatter
{
    protected static readonly JsonEncodedText IdName = JsonEncodedText.Encode("id");
    protected static readonly JsonEncodedText ObjectName = JsonEncodedText.Encode("object");
    protected static readonly JsonEncodedText CreatedName = JsonEncodedText.Encode("created");
    protected static readonly JsonEncodedText ModelName = JsonEncodedText.Encode("model");
    protected static readonly JsonEncodedText FingerprintName = JsonEncodedText.Encode("system_fingerprint");
    protected static readonly JsonEncodedText ChoicesName = JsonEncodedText.Encode("choices");
    protected static readonly JsonEncodedText IndexName = JsonEncodedText.Encode("index");
    protected static readonly JsonEncodedText LogprobsName = JsonEncodedText.Encode("logprobs");
    protected static readonly JsonEncodedText FinishReasonName = JsonEncodedText.Encode("finish_reason");
    protected static readonly JsonEncodedText UsageName = JsonEncodedText.Encode("usage");

    private readonly JsonEncodedText _id;
    private readonly JsonEncodedText _object;
    private readonly long _created;
    private readonly JsonEncodedText _model;
    private readonly JsonEncodedText _fingerprint;
    private readonly bool _logProbs;

    protected ChunkFormatter(SseWriter sse, string id, string objectType, long created, string model, string fingerprint, bool logProbs)
    {
        Sse = sse;
        _logProbs = logProbs;
        _id = JsonEncodedText.Encode(id, OpenAiJson.Encoder);
        _object = JsonEncodedText.Encode(objectType);
        _created = created;
        _model = JsonEncodedText.Encode(model, OpenAiJson.Encoder);
        _fingerprint = JsonEncodedText.Encode(fingerprint, OpenAiJson.Encoder);
    }

    protected SseWriter Sse { get; }

    /// <summary>
    /// A text or reasoning chunk's log-probabilities: where they were asked for, a list on every text chunk (empty while its tokens'
    /// text is still held back), as OpenAI sends them.
    /// </summary>
    protected IReadOnlyList<TokenLogProb>? LogProbsOf(IReadOnlyList<TokenLogProb>? logProbs) => logProbs ?? (_logProbs ? [] : null);

    /// <summary>What a choice sends before its first token (chat: the assistant role).</summary>
    public abstract void WriteStart(int choice);

    public abstract void WriteText(TextDelta delta);

    public abstract void WriteFinish(int choice, string finishReason);

    /// <summary>The <c>include_usage</c> chunk: no choices, only usage.</summary>
    public void WriteUsage(Usage usage)
    {
        var writer = BeginChunk();
        writer.WriteEndArray();
        writer.WritePropertyName(UsageName);
        JsonSerializer.Serialize(writer, usage, OpenAiJson.Context.Usage);
        writer.WriteEndObject();
        Sse.EndEvent();
    }

    /// <summary>An error after the stream started: one <c>{"error":...}</c> event.</summary>
    public void WriteError(OpenAiError error)
    {
        var writer = Sse.BeginEvent();
        JsonSerializer.Serialize(writer, new OpenAiErrorResponse(error), OpenAiJson.Context.OpenAiErrorResponse);
        Sse.EndEvent();
    }

    /// <summary>Starts an event with the chunk's common fields and opens <c>choices</c>.</summary>
    protected Utf8JsonWriter BeginChunk()
    {
        var writer = Sse.BeginEvent();
        writer.WriteStartObject();
        writer.WriteString(IdName, _id);
        writer.WriteString(ObjectName, _object);
        writer.WriteNumber(CreatedName, _created);
        writer.WriteString(ModelName, _model);
        writer.WriteString(FingerprintName, _fingerprint);
        writer.WriteStartArray(ChoicesName);
        return writer;
    }

    /// <summary>Closes <c>choices</c>, writes <c>usage: null</c> and ends the event.</summary>
    /// <summary>Closes a choice with its finish reason (null while it streams), then the chunk.</summary>
    protected void EndChoice(Utf8JsonWriter writer, string? finishReason)
    {
        if (finishReason is null)
        {
            writer.WriteNull(FinishReasonName);
        }
        else
        {
            writer.WriteString(FinishReasonName, finishReason);
        }

        writer.WriteEndObject();
        EndChunk(writer);
    }

    protected void EndChunk(Utf8JsonWriter writer)
    {
        writer.WriteEndArray();
        writer.WriteNull(UsageName);
        writer.WriteEndObject();
        Sse.EndEvent();
    }
}

/// <summary><c>chat.completion.chunk</c> events.</summary>
internal sealed class ChatChunkFormatter(SseWriter sse, string id, long created, string model, string fingerprint, bool logProbs)
    : ChunkFormatter(sse, id, "chat.completion.chunk", created, model, fingerprint, logProbs)
{
    private static readonly JsonEncodedText DeltaName = JsonEncodedText.Encode("delta");
    private static readonly JsonEncodedText RoleName = JsonEncodedText.Encode("role");
    private static readonly JsonEncodedText AssistantRole = JsonEncodedText.Encode("assistant");
    private static readonly JsonEncodedText ContentName = JsonEncodedText.Encode("content");
    private static readonly JsonEncodedText ReasoningContentName = JsonEncodedText.Encode("reasoning_content");
    private static readonly JsonEncodedText ToolCallsName = JsonEncodedText.Encode("tool_calls");
    private static readonly JsonEncodedText TypeName = JsonEncodedText.Encode("type");
    private static readonly JsonEncodedText FunctionType = JsonEncodedText.Encode("function");
    private static readonly JsonEncodedText FunctionName = JsonEncodedText.Encode("function");
    private static readonly JsonEncodedText NameName = JsonEncodedText.Encode("name");
    private static readonly JsonEncodedText ArgumentsName = JsonEncodedText.Encode("arguments");

    public override void WriteStart(int choice)
    {
        var writer = BeginChoice(choice);
        writer.WriteString(RoleName, AssistantRole);
        writer.WriteString(ContentName, string.Empty);
        EndChoice(writer, logProbs: null, finishReason: null);
    }

    public override void WriteText(TextDelta delta)
    {
        var writer = BeginChoice(delta.Choice);
        writer.WriteString(ContentName, delta.Text);
        EndChoice(writer, LogProbsOf(delta.LogProbs), finishReason: null);
    }

    /// <summary>A piece of reasoning, as llama-server streams it (<c>delta.reasoning_content</c>); nothing for an empty one without log-probabilities.</summary>
    public void WriteReasoning(ReasoningDelta delta)
    {
        if (delta.Text.Length == 0 && delta.LogProbs is null)
        {
            return;
        }

        var writer = BeginChoice(delta.Choice);
        writer.WriteString(ReasoningContentName, delta.Text);
        EndChoice(writer, LogProbsOf(delta.LogProbs), finishReason: null);
    }

    public override void WriteFinish(int choice, string finishReason)
    {
        var writer = BeginChoice(choice);
        EndChoice(writer, logProbs: null, finishReason);
    }

    /// <summary>A call's first chunk, as OpenAI streams it: index, id, type, the function's name, empty arguments.</summary>
    public void WriteToolCallStart(ToolCallStarted call)
    {
        var writer = BeginToolCall(call.Choice, call.Index);
        writer.WriteString(IdName, call.Id);
        writer.WriteString(TypeName, FunctionType);
        writer.WriteStartObject(FunctionName);
        writer.WriteString(NameName, call.Name);
        writer.WriteString(ArgumentsName, string.Empty);
        EndToolCall(writer);
    }

    /// <summary>A later chunk of a call: only a piece of its arguments.</summary>
    public void WriteToolCallArguments(ToolCallArgumentsDelta arguments)
    {
        var writer = BeginToolCall(arguments.Choice, arguments.Index);
        writer.WriteStartObject(FunctionName);
        writer.WriteString(ArgumentsName, arguments.Fragment);
        EndToolCall(writer);
    }

    private Utf8JsonWriter BeginToolCall(int choice, int index)
    {
        var writer = BeginChoice(choice);
        writer.WriteStartArray(ToolCallsName);
        writer.WriteStartObject();
        writer.WriteNumber(IndexName, index);
        return writer;
    }

    private void EndToolCall(Utf8JsonWriter writer)
    {
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteEndArray();
        EndChoice(writer, logProbs: null, finishReason: null);
    }

    private Utf8JsonWriter BeginChoice(int choice)
    {
        var writer = BeginChunk();
        writer.WriteStartObject();
        writer.WriteNumber(IndexName, choice);
        writer.WriteStartObject(DeltaName);
        return writer;
    }

    private void EndChoice(Utf8JsonWriter writer, IReadOnlyList<TokenLogProb>? logProbs, string? finishReason)
    {
        writer.WriteEndObject();
        if (logProbs is null)
        {
            writer.WriteNull(LogprobsName);
        }
        else
        {
            writer.WritePropertyName(LogprobsName);
            JsonSerializer.Serialize(writer, new ChatLogProbs(OpenAiLogProbs.ToChat(logProbs)), OpenAiJson.Context.ChatLogProbs);
        }

        EndChoice(writer, finishReason);
    }
}

/// <summary>
/// <c>text_completion</c> events. With <c>echo</c> each choice first sends its prompt; log-probability text
/// offsets count from the start of the choice's text.
/// </summary>
internal sealed class CompletionChunkFormatter : ChunkFormatter
{
    private static readonly JsonEncodedText TextName = JsonEncodedText.Encode("text");

    private readonly Func<int, string?> _echo;
    private readonly int[] _textOffsets;

    public CompletionChunkFormatter(SseWriter sse, string id, long created, string model, string fingerprint, int choices, Func<int, string?> echo, bool logProbs)
        : base(sse, id, "text_completion", created, model, fingerprint, logProbs)
    {
        _echo = echo;
        _textOffsets = new int[choices];
    }

    public override void WriteStart(int choice)
    {
        if (_echo(choice) is { } prompt)
        {
            WriteChoice(choice, prompt, logProbs: null, finishReason: null);
            _textOffsets[choice] = prompt.Length;
        }
    }

    public override void WriteText(TextDelta delta) => WriteChoice(delta.Choice, delta.Text, LogProbsOf(delta.LogProbs), finishReason: null);

    public override void WriteFinish(int choice, string finishReason) => WriteChoice(choice, string.Empty, logProbs: null, finishReason);

    private void WriteChoice(int choice, string text, IReadOnlyList<TokenLogProb>? logProbs, string? finishReason)
    {
        var writer = BeginChunk();
        writer.WriteStartObject();
        writer.WriteString(TextName, text);
        writer.WriteNumber(IndexName, choice);
        if (logProbs is null)
        {
            writer.WriteNull(LogprobsName);
        }
        else
        {
            writer.WritePropertyName(LogprobsName);
            JsonSerializer.Serialize(writer, OpenAiLogProbs.ToCompletion(logProbs, ref _textOffsets[choice]), OpenAiJson.Context.CompletionLogProbs);
        }

        EndChoice(writer, finishReason);
    }
}
