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
/// call of the answer has it; else a new one. Token counts and log-probabilities go with the content by token: a
/// token is content when any of its text is (once, with the first content it wrote); tokens that became markup or a
/// call are no content's.
/// </summary>
internal sealed class ToolCallStage : PerChoiceStage
{
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
        : base(Parsers(choices, format, toolNames, parallelCalls, conversationIds))
    {
        Format = format;
    }

    /// <summary>The call syntax the parsers read: its markers are the request's preserved tokens (<see cref="Scheduling.MarkerTokens"/>).</summary>
    public ToolCallFormat Format { get; }

    /// <summary>OpenAI's form: <c>call_</c> and 24 alphanumerics.</summary>
    public static string NewCallId() => "call_" + RandomNumberGenerator.GetString(ShortToolCallIds.Alphanumerics, 24);

    private static ChoiceParser[] Parsers(int choices, ToolCallFormat format, IEnumerable<string> toolNames, bool parallelCalls, IEnumerable<string>? conversationIds)
    {
        var names = new HashSet<string>(toolNames, StringComparer.Ordinal);
        var taken = new HashSet<string>(conversationIds ?? [], StringComparer.Ordinal);
        Func<string> ids = ToolCallFormats.WantsShortIds(format) ? ShortToolCallIds.NewId : NewCallId;
        var parsers = new ChoiceParser[choices];
        for (var i = 0; i < choices; i++)
        {
            parsers[i] = new ChoiceParser(i, format, names, parallelCalls, ids, taken);
        }

        return parsers;
    }

    private sealed class ChoiceParser : IToolCallSink, IChoiceStage
    {
        private readonly int _choice;
        private readonly ToolCallFormat _format;
        private readonly bool _parallelCalls;
        private readonly Func<string> _newId;
        private readonly ToolCallParser _parser;
        private readonly StringBuilder _text = new();
        private readonly StringBuilder _arguments = new();
        private readonly HashSet<string> _ids;
        private readonly Queue<PendingToken> _pending = new();
        private List<GenerationEvent>? _output;
        private int _carriedTokens;
        private List<TokenLogProb>? _carriedLogProbs;
        private int _pushed;
        private bool _lastWasContent;
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
            Enqueue(delta);
            _parser.Push(delta.Text);
            Flush();
            _output = null;
        }

        public void Complete(GenerationCompleted done, List<GenerationEvent> output)
        {
            _output = output;
            _parser.Complete(cutOff: done.FinishReason != FinishReason.Stop);
            Flush();

            // Tokens without text right after the last content (a control token) are that content's.
            while (_pending.TryDequeue(out var token))
            {
                if (token.Start == token.End && _lastWasContent)
                {
                    Claim(token);
                }
                else
                {
                    _lastWasContent = false;
                }
            }

            if (_carriedLogProbs is not null)
            {
                output.Add(new TextDelta(_choice, string.Empty, _carriedTokens, _carriedLogProbs));
            }

            _output = null;
            output.Add(_calls > 0 && done.FinishReason == FinishReason.Stop ? done with { FinishReason = FinishReason.ToolCalls } : done);
        }

        public void OnText(string text)
        {
            FlushArguments();
            var end = _parser.ContentEnd;
            ClaimContent(Math.Max(end - text.Length, 0), end);
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
        }

        public void OnArguments(string fragment)
        {
            if (!_ignoringCall)
            {
                FlushText();
                _arguments.Append(fragment);
            }
        }

        /// <summary>
        /// Places the delta's tokens in the text fed to the parser: with log-probabilities each token by its text's
        /// length (the last one ending with the delta, as a character may span tokens); without, every token spans the
        /// delta's text.
        /// </summary>
        private void Enqueue(TextDelta delta)
        {
            var start = _pushed;
            _pushed += delta.Text.Length;
            if (delta.LogProbs is not { } logProbs)
            {
                for (var i = 0; i < delta.Tokens; i++)
                {
                    _pending.Enqueue(new PendingToken(null, start, _pushed));
                }

                return;
            }

            for (var i = 0; i < logProbs.Count; i++)
            {
                var end = i == logProbs.Count - 1 ? _pushed : Math.Min(start + logProbs[i].Token.Length, _pushed);
                _pending.Enqueue(new PendingToken(logProbs[i], start, end));
                start = end;
            }
        }

        /// <summary>
        /// Content was fed at [<paramref name="start"/>, <paramref name="end"/>): the waiting tokens before it wrote no
        /// content (content comes in order), those that overlap it are its; a token without text goes with the one before.
        /// </summary>
        private void ClaimContent(int start, int end)
        {
            while (_pending.TryPeek(out var token) && token.Start < end)
            {
                _pending.Dequeue();
                var isContent = token.Start == token.End ? token.Start >= start || _lastWasContent : token.End > start;
                if (isContent)
                {
                    Claim(token);
                }
                else
                {
                    _lastWasContent = false;
                }
            }
        }

        private void Claim(PendingToken token)
        {
            _lastWasContent = true;
            _carriedTokens++;
            if (token.LogProb is { } logProb)
            {
                (_carriedLogProbs ??= []).Add(logProb);
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

        /// <summary>A generated token waiting to be placed, at [<see cref="Start"/>, <see cref="End"/>) of the fed text; its log-probability when asked for.</summary>
        private readonly record struct PendingToken(TokenLogProb? LogProb, int Start, int End);
    }
}
