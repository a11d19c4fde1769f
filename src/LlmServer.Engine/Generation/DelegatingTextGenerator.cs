using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Generation;

/// <summary>
/// A text generator that passes every call to another (as Microsoft.Extensions.AI's <c>DelegatingChatClient</c>):
/// a decorator derives from it and overrides only what it changes.
/// </summary>
public abstract class DelegatingTextGenerator(ITextGenerator inner) : ITextGenerator
{
    /// <summary>The generator every call goes on to.</summary>
    protected ITextGenerator InnerGenerator { get; } = inner;

    public virtual EngineState State => InnerGenerator.State;

    public virtual ModelInfo? Model => InnerGenerator.Model;

    public virtual Task<EngineState> WaitForStateChangeAsync(EngineState state, CancellationToken cancellationToken = default) =>
        InnerGenerator.WaitForStateChangeAsync(state, cancellationToken);

    public virtual SchedulerStatus GetStatus() => InnerGenerator.GetStatus();

    public virtual string ApplyChatTemplate(IReadOnlyList<ChatTurn> messages, IReadOnlyList<ToolDefinition> tools, bool addAssistantPrompt = true) =>
        InnerGenerator.ApplyChatTemplate(messages, tools, addAssistantPrompt);

    public virtual string RenderPrompt(GenerationRequest request) => InnerGenerator.RenderPrompt(request);

    public virtual TokenCount CountPromptTokens(string text, int limit) => InnerGenerator.CountPromptTokens(text, limit);

    public virtual IReadOnlyList<int> Tokenize(string text, bool addSpecial = false, bool parseSpecial = false) => InnerGenerator.Tokenize(text, addSpecial, parseSpecial);

    public virtual string Detokenize(IEnumerable<int> tokens) => InnerGenerator.Detokenize(tokens);

    public virtual GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default) => InnerGenerator.Submit(request, cancellationToken);

    public virtual void EvictSession(string sessionKey) => InnerGenerator.EvictSession(sessionKey);

    public virtual Task DrainAsync(TimeSpan timeout, CancellationToken cancellationToken = default) => InnerGenerator.DrainAsync(timeout, cancellationToken);
}
