using System.Security.Cryptography;
using System.Text;
using LlmServer.Engine.Generation;

namespace LlmServer.Engine.Tools;

/// <summary>
/// The one place generated text becomes content and tool calls, for every front end: it sits between the
/// scheduler's events and the reader of a <see cref="GenerationStream"/>, one parser per choice. A text delta
/// becomes text, <see cref="ToolCallStarted"/> and <see cref="ToolCallArgumentsDelta"/> events; a choice that
/// stopped after a call finishes with <see cref="FinishReason.ToolCalls"/>. A call carries the id the model wrote
/// where the format keeps it (<see cref="ToolCallFormats.KeepsModelId"/>) and no call of the conversation or earlier
/// call of the answer has it; else a new one.
/// </summary>
internal sealed class ToolCallStage
{
    private readonly ChoiceParser[] _choices;

    /// <param name="choices">Choices of the request, one parser each.</param>
    /// <param name="format">The call syntax the model writes.</param>
    /// <param name="toolNames">The tools a call may name.</param>
    /// <param name="parallelCalls">Whether a choice may make more than one call.</param>
    /// <param name="conversationIds">
    /// Call ids already in the conversation, as the client sent them and as the template renders them: a model that
    /// copies one from its prompt gets a new id, so no two calls of a conversation share one (and a Mistral template's
    /// renamed ids keep their names in later requests, see <see cref="ShortToolCallIds.ForTemplate"/>).
    /// </param>
    public ToolCallStage(int choices, ToolCallFormat format, IEnumerable<string> toolNames, bool parallelCalls, IEnumerable<string>? conversationIds = null)
    {
        var names = new HashSet<string>(toolNames, StringComparer.Ordinal);
        var taken = new HashSet<string>(conversationIds ?? [], StringComparer.Ordinal);
        Func<string> ids = ToolCallFormats.WantsShortIds(format) ? ShortToolCallIds.NewId : NewCallId;
        _choices = new ChoiceParser[choices];
        for (var i = 0; i < choices; i++)
        {
            _choices[i] = new ChoiceParser(i, format, names, parallelCalls, ids, taken);
        }
    }

    /// <summary>OpenAI's form: <c>call_</c> and 24 alphanumerics.</summary>
    public static string NewCallId() => "call_" + RandomNumberGenerator.GetString(ShortToolCallIds.Alphanumerics, 24);

    /// <summary>Turns one scheduler event into what the reader sees, appended to <paramref name="output"/>.</summary>
    public void Process(GenerationEvent item, List<GenerationEvent> output)
    {
        switch (item)
        {
            case TextDelta delta:
                _choices[delta.Choice].Push(delta, output);
                break;
            case GenerationCompleted done:
                _choices[done.Choice].Complete(done, output);
                break;
            default:
                output.Add(item);
                break;
        }
    }

    private sealed class ChoiceParser : IToolCallSink
    {
        private readonly int _choice;
        private readonly ToolCallFormat _format;
        private readonly bool _parallelCalls;
        private readonly Func<string> _newId;
        private readonly ToolCallParser _parser;
        private readonly StringBuilder _text = new();
        private readonly StringBuilder _arguments = new();
        private readonly HashSet<string> _ids;
        private List<GenerationEvent>? _output;
        private int _carriedTokens;
        private List<TokenLogProb>? _carriedLogProbs;
        private int _calls;
        private bool _ignoringCall;

        public ChoiceParser(int choice, ToolCallFormat format, IReadOnlySet<string> toolNames, bool parallelCalls, Func<string> newId, IReadOnlySet<string> conversationIds)
        {
            _ids = new HashSet<string>(conversationIds, StringComparer.Ordinal);
            _choice = choice;
            _format = format;
            _parallelCalls = parallelCalls;
            _newId = newId;
            _parser = new ToolCallParser(this, format, toolNames);
        }

        public void Push(TextDelta delta, List<GenerationEvent> output)
        {
            _output = output;
            _carriedTokens += delta.Tokens;
            if (delta.LogProbs is { } logProbs)
            {
                (_carriedLogProbs ??= []).AddRange(logProbs);
            }

            _parser.Push(delta.Text);
            Flush();
            _output = null;
        }

        public void Complete(GenerationCompleted done, List<GenerationEvent> output)
        {
            _output = output;
            _parser.Complete(cutOff: done.FinishReason != FinishReason.Stop);
            Flush();
            _output = null;
            output.Add(_calls > 0 && done.FinishReason == FinishReason.Stop ? done with { FinishReason = FinishReason.ToolCalls } : done);
        }

        public void OnText(string text)
        {
            FlushArguments();
            _text.Append(text);
        }

        public void OnCallStarted(string name, string? id)
        {
            Flush();
            if (_calls > 0 && !_parallelCalls)
            {
                // One call was allowed and made; a further one is not passed on.
                _ignoringCall = true;
                return;
            }

            _ignoringCall = false;
            _output!.Add(new ToolCallStarted(_choice, _calls++, CallId(id), name));

            // Tokens and log-probabilities of call text belong to no content.
            _carriedTokens = 0;
            _carriedLogProbs = null;
        }

        public void OnArguments(string fragment)
        {
            if (!_ignoringCall)
            {
                FlushText();
                _arguments.Append(fragment);
            }
        }

        private void Flush()
        {
            FlushText();
            FlushArguments();
        }

        private void FlushText()
        {
            if (_text.Length == 0)
            {
                return;
            }

            _output!.Add(new TextDelta(_choice, _text.ToString(), _carriedTokens, _carriedLogProbs));
            _text.Clear();
            _carriedTokens = 0;
            _carriedLogProbs = null;
        }

        private void FlushArguments()
        {
            if (_arguments.Length == 0)
            {
                return;
            }

            _output!.Add(new ToolCallArgumentsDelta(_choice, _calls - 1, _arguments.ToString()));
            _arguments.Clear();
        }

        /// <summary>The model's id when the format keeps it and no call of the conversation or the answer has it; else a new one.</summary>
        private string CallId(string? modelId)
        {
            if (modelId is not null && ToolCallFormats.KeepsModelId(_format, modelId) && _ids.Add(modelId))
            {
                return modelId;
            }

            string id;
            do
            {
                id = _newId();
            }
            while (!_ids.Add(id));
            return id;
        }
    }
}
