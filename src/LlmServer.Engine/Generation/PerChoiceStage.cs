namespace LlmServer.Engine.Generation;

/// <summary>
/// A stage between the scheduler's events and a stream's reader that rewrites each choice's text on its own (the
/// reasoning splitter, the tool-call parser): a choice's text deltas and its completion go to that choice's part;
/// any other event (one an earlier stage made) passes as it is.
/// </summary>
internal abstract class PerChoiceStage(IReadOnlyList<IChoiceStage> choices)
{
    /// <summary>Turns one event into what the next stage sees, appended to <paramref name="output"/>.</summary>
    public void Process(GenerationEvent item, List<GenerationEvent> output)
    {
        switch (item)
        {
            case TextDelta delta:
                choices[delta.Choice].Push(delta, output);
                break;
            case GenerationCompleted done:
                choices[done.Choice].Complete(done, output);
                break;
            default:
                output.Add(item);
                break;
        }
    }
}

/// <summary>One choice's part of a <see cref="PerChoiceStage"/>.</summary>
internal interface IChoiceStage
{
    void Push(TextDelta delta, List<GenerationEvent> output);

    /// <summary>The choice ended: what the part still holds goes out, then <paramref name="done"/> as the stage ends the choice.</summary>
    void Complete(GenerationCompleted done, List<GenerationEvent> output);
}
