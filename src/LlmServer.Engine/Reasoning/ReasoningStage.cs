using System.Text;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Tools;

namespace LlmServer.Engine.Reasoning;

/// <summary>
/// The one place a reasoning model's thinking is parted from its answer, as llama.cpp's server does by default
/// (<c>--reasoning-format auto</c>, the DeepSeek shape): text inside <c>&lt;think&gt;</c>…<c>&lt;/think&gt;</c>
/// becomes <see cref="ReasoningDelta"/>s, the rest stays <see cref="TextDelta"/>s (so a tool-call parser after it
/// sees only the answer). The block is recognised where the answer starts (after whitespace), or is already open
/// when the prompt ends with the opening tag (the generation prompt opened it). An answer that ends before the
/// closing tag is all reasoning. Whitespace around the block is dropped, as llama.cpp strips it. A delta's tokens
/// and log-probabilities go with the first piece it completes. The block's tokens, both tags included (the delta that
/// completes the closing tag is the last), are reasoning tokens: they go with reasoning pieces (an empty one when the
/// block held only whitespace), and their count is the completion's <see cref="GenerationUsage.ReasoningTokens"/>.
/// </summary>
/// <param name="choices">Choices of the request, one splitter each.</param>
/// <param name="startsInside">The prompt ends inside an open block: the answer starts as reasoning.</param>
internal sealed class ReasoningStage(int choices, bool startsInside)
    : PerChoiceStage(Enumerable.Range(0, choices).Select(i => new ChoiceSplitter(i, startsInside)).ToArray())
{
    public const string OpenTag = "<think>";
    public const string CloseTag = "</think>";

    /// <summary>Whether a chat template's model writes its reasoning in think tags: the template handles the closing tag.</summary>
    public static bool WritesThinkTags(string? templateSource) => templateSource?.Contains(CloseTag, StringComparison.Ordinal) == true;

    /// <summary>
    /// Whether the prompt leaves the answer inside an open block (DeepSeek-R1's and QwQ's generation prompts end with
    /// <c>&lt;think&gt;</c>). A prompt that closed it (Qwen3 with <c>enable_thinking</c> false) does not. A continued
    /// final message (its last <paramref name="prefill"/> characters) is the answer's beginning: it may open the
    /// block, or close the one the template opened.
    /// </summary>
    public static bool OpensInPrompt(string prompt, int prefill = 0)
    {
        var answer = prompt.AsSpan(prompt.Length - prefill);
        if (!prompt.AsSpan(0, prompt.Length - prefill).TrimEnd().EndsWith(OpenTag, StringComparison.Ordinal))
        {
            var trimmed = answer.TrimStart();
            if (!trimmed.StartsWith(OpenTag, StringComparison.Ordinal))
            {
                return false;
            }

            answer = trimmed[OpenTag.Length..];
        }

        return !answer.Contains(CloseTag, StringComparison.Ordinal);
    }

    /// <summary>
    /// Lazy-grammar trigger patterns that fire only in the answer, after the block (llama.cpp anchors its own the
    /// same way): behind the closing tag when the prompt opened the block; otherwise past a block the answer starts
    /// with, or where an answer that does not start one starts. Written whole (<see cref="ToolGrammar.WholeText"/>):
    /// a pattern llama.cpp searches for could start its match inside the opening tag and pass the lookahead.
    /// </summary>
    public static IReadOnlyList<string> AnchorTriggers(IReadOnlyList<string> patterns, bool opensInPrompt) =>
        ToolGrammar.WholeText(patterns, opensInPrompt
            ? @"[\s\S]*?" + CloseTag + @"\s*"
            : @"(?:\s*" + OpenTag + @"[\s\S]*?" + CloseTag + @"\s*|(?!\s*" + OpenTag + "))");

    private enum Mode
    {
        /// <summary>Nothing but whitespace yet: an opening tag may still come.</summary>
        Start,

        Reasoning,

        /// <summary>The block closed: whitespace before the answer is dropped.</summary>
        AfterReasoning,

        Content,
    }

    private sealed class ChoiceSplitter(int choice, bool startsInside) : IChoiceStage
    {
        private readonly StringBuilder _held = new();
        private Mode _mode = startsInside ? Mode.Reasoning : Mode.Start;
        private bool _reasoningStarted;
        private int _tokens;
        private int _reasoningTokens;
        private List<TokenLogProb>? _logProbs;
        private List<GenerationEvent>? _output;

        public void Push(TextDelta delta, List<GenerationEvent> output)
        {
            _output = output;
            if (_mode == Mode.Content && _tokens == 0 && _logProbs is null)
            {
                // Past the block everything is answer, as it came.
                output.Add(delta);
                _output = null;
                return;
            }

            _tokens += delta.Tokens;
            if (delta.LogProbs is { } logProbs)
            {
                (_logProbs ??= []).AddRange(logProbs);
            }

            _held.Append(delta.Text);
            Split();
            _output = null;
        }

        public void Complete(GenerationCompleted done, List<GenerationEvent> output)
        {
            _output = output;
            var rest = _held.ToString();
            _held.Clear();
            switch (_mode)
            {
                case Mode.Start:
                    // No block: whitespace or a tag's beginning the answer ended with is answer.
                    Emit(rest, reasoning: false);
                    break;
                case Mode.Reasoning:
                    // Cut before the closing tag: all of it was reasoning, a partial tag included.
                    Emit(_reasoningStarted ? rest.TrimEnd() : rest.Trim(), reasoning: true);
                    break;
            }

            var open = _mode == Mode.Reasoning;
            EmitHeld(reasoning: open);
            _output = null;

            // A block that never closed holds every generated token, those that wrote no text included (a stop
            // sequence's).
            var reasoningTokens = open ? done.Usage.CompletionTokens : _reasoningTokens;
            output.Add(done with { Usage = done.Usage with { ReasoningTokens = reasoningTokens } });
        }

        private void Split()
        {
            while (_held.Length > 0)
            {
                var text = _held.ToString();
                switch (_mode)
                {
                    case Mode.Start:
                        var trimmed = text.AsSpan().TrimStart();
                        if (trimmed.StartsWith(OpenTag, StringComparison.Ordinal))
                        {
                            _held.Remove(0, text.Length - trimmed.Length + OpenTag.Length);
                            _mode = Mode.Reasoning;
                            continue;
                        }

                        if (OpenTag.AsSpan().StartsWith(trimmed, StringComparison.Ordinal))
                        {
                            return;
                        }

                        _held.Clear();
                        _mode = Mode.Content;
                        Emit(text, reasoning: false);
                        return;
                    case Mode.Reasoning:
                        if (!_reasoningStarted)
                        {
                            var leading = text.Length - text.AsSpan().TrimStart().Length;
                            _held.Remove(0, leading);
                            if (_held.Length == 0)
                            {
                                return;
                            }

                            _reasoningStarted = true;
                            text = text[leading..];
                        }

                        var end = text.IndexOf(CloseTag, StringComparison.Ordinal);
                        if (end >= 0)
                        {
                            _held.Remove(0, end + CloseTag.Length);
                            _mode = Mode.AfterReasoning;
                            Emit(text[..end].TrimEnd(), reasoning: true);
                            EmitHeld(reasoning: true);
                            continue;
                        }

                        var ready = Ready(text);
                        _held.Remove(0, ready);
                        Emit(text[..ready], reasoning: true);
                        return;
                    case Mode.AfterReasoning:
                        var answer = text.AsSpan().TrimStart();
                        _held.Remove(0, text.Length - answer.Length);
                        if (answer.IsEmpty)
                        {
                            return;
                        }

                        _mode = Mode.Content;
                        continue;
                    default:
                        _held.Clear();
                        Emit(text, reasoning: false);
                        return;
                }
            }
        }

        /// <summary>
        /// How much of the reasoning can go out: all but a closing tag's beginning at its end and the whitespace
        /// before it (dropped if the tag follows).
        /// </summary>
        private static int Ready(string text)
        {
            var ready = text.Length;
            for (var length = Math.Min(text.Length, CloseTag.Length - 1); length > 0; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(CloseTag.AsSpan(0, length)))
                {
                    ready = text.Length - length;
                    break;
                }
            }

            while (ready > 0 && char.IsWhiteSpace(text[ready - 1]))
            {
                ready--;
            }

            return ready;
        }

        private void Emit(string text, bool reasoning)
        {
            if (text.Length > 0)
            {
                Send(text, reasoning);
            }
        }

        /// <summary>Tokens no text carries out (a closing tag, a block of whitespace) go on an empty piece of their side.</summary>
        private void EmitHeld(bool reasoning)
        {
            if (_tokens > 0 || _logProbs is not null)
            {
                Send(string.Empty, reasoning);
            }
        }

        private void Send(string text, bool reasoning)
        {
            if (reasoning)
            {
                _reasoningTokens += _tokens;
            }

            _output!.Add(reasoning
                ? new ReasoningDelta(choice, text, _tokens, _logProbs)
                : new TextDelta(choice, text, _tokens, _logProbs));
            _tokens = 0;
            _logProbs = null;
        }
    }
}
