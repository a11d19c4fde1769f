using System.Runtime.CompilerServices;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Models;
using Microsoft.Extensions.AI;

namespace LlmServer.Extensions.AI;

/// <summary>
/// <see cref="IChatClient"/> over <see cref="ITextGenerator"/>: requests go through the same scheduler as the
/// REST API and the hub, so they share its batching, cancellation and KV-cache reuse.
/// </summary>
internal sealed class LlmServerChatClient(ITextGenerator generator, TimeProvider timeProvider) : IChatClient
{
    /// <summary>What <see cref="ChatClientMetadata.ProviderName"/> reports.</summary>
    public const string ProviderName = "llmserver";

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var createdAt = timeProvider.GetUtcNow();
        await using var stream = Submit(messages, options, cancellationToken);
        var result = await stream.CollectAsync(cancellationToken);
        var choice = result.Choices[0];
        ThrowIfUnfinished(choice.Completion, cancellationToken);

        List<AIContent> contents = [];
        if (choice.Reasoning is { } reasoning && ChatRequestMapper.ReturnsReasoning(options))
        {
            contents.Add(new TextReasoningContent(reasoning));
        }

        if (choice.Text.Length > 0 || choice.ToolCalls.Count == 0)
        {
            contents.Add(new TextContent(choice.Text));
        }

        contents.AddRange(choice.ToolCalls.Select(ToFunctionCall));
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, contents) { MessageId = stream.Id, CreatedAt = createdAt })
        {
            ResponseId = stream.Id,
            ModelId = generator.Model?.Id,
            CreatedAt = createdAt,
            FinishReason = ToFinishReason(choice.Completion.FinishReason),
            Usage = ToUsage(choice.Completion.Usage),
            RawRepresentation = result,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages,
        ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var createdAt = timeProvider.GetUtcNow();

        // Disposing the stream (the caller stopped enumerating, or anything threw) cancels the generation and frees its slot.
        await using var stream = Submit(messages, options, cancellationToken);
        var modelId = generator.Model?.Id;
        var completed = false;
        var returnsReasoning = ChatRequestMapper.ReturnsReasoning(options);

        // A call is handed over whole (FunctionInvokingChatClient runs what it gets): its arguments are gathered first.
        var calls = new List<(string Id, string Name, System.Text.StringBuilder Arguments)>();
        await foreach (var item in stream.ReadAllAsync(cancellationToken))
        {
            switch (item)
            {
                case TextDelta delta when delta.Text.Length > 0:
                    yield return NewUpdate(new TextContent(delta.Text), delta);
                    break;
                case ReasoningDelta thought when returnsReasoning && thought.Text.Length > 0:
                    yield return NewUpdate(new TextReasoningContent(thought.Text), thought);
                    break;
                case ToolCallStarted started:
                    calls.Add((started.Id, started.Name, new System.Text.StringBuilder()));
                    break;
                case ToolCallArgumentsDelta arguments:
                    calls[arguments.Index].Arguments.Append(arguments.Fragment);
                    break;
                case GenerationCompleted done:
                    ThrowIfUnfinished(done, cancellationToken);
                    foreach (var call in calls)
                    {
                        yield return NewUpdate(ToFunctionCall(new ToolCall(call.Id, call.Name, call.Arguments.ToString())), done);
                    }

                    completed = true;
                    var last = NewUpdate(new UsageContent(ToUsage(done.Usage)), done);
                    last.FinishReason = ToFinishReason(done.FinishReason);
                    yield return last;
                    break;
            }
        }

        if (!completed)
        {
            throw new InvalidOperationException($"Generation '{stream.Id}' ended without a completion event.");
        }

        ChatResponseUpdate NewUpdate(AIContent content, GenerationEvent raw) => new(ChatRole.Assistant, [content])
        {
            ResponseId = stream.Id,
            MessageId = stream.Id,
            ModelId = modelId,
            CreatedAt = createdAt,
            RawRepresentation = raw,
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }

        if (serviceType == typeof(ChatClientMetadata))
        {
            return new ChatClientMetadata(ProviderName, providerUri: null, defaultModelId: generator.Model?.Id);
        }

        if (serviceType == typeof(ModelInfo))
        {
            return generator.Model;
        }

        if (serviceType.IsInstanceOfType(generator))
        {
            return generator;
        }

        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        // The engine belongs to the host that registered it; this client holds nothing of its own.
    }

    /// <summary>
    /// Maps and admits the request; a refusal (the mapper's or the engine's) names the option the caller set
    /// (<see cref="InProcessFieldNames.ChatOptions"/>).
    /// </summary>
    private GenerationStream Submit(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken)
    {
        try
        {
            return generator.Submit(ChatRequestMapper.ToGenerationRequest(messages, options), cancellationToken);
        }
        catch (GenerationException engine) when (InProcessFieldNames.ChatOptions.Named(engine, options) is { } named)
        {
            throw named;
        }
    }

    /// <summary>A cancelled or failed generation surfaces as an exception, as .NET callers expect, never as a partial answer.</summary>
    private static void ThrowIfUnfinished(GenerationCompleted completion, CancellationToken cancellationToken)
    {
        switch (completion.FinishReason)
        {
            case FinishReason.Cancelled:
                cancellationToken.ThrowIfCancellationRequested();
                throw new OperationCanceledException("The engine cancelled the generation (it is draining or stopping).");
            case FinishReason.Error:
                var error = completion.Error;
                throw new GenerationException(error?.Code ?? GenerationErrorCode.Internal, error?.Message ?? "The generation failed.");
        }
    }

    /// <summary>The engine's call as Microsoft.Extensions.AI has it: arguments parsed from their JSON text.</summary>
    private static FunctionCallContent ToFunctionCall(ToolCall call)
    {
        Dictionary<string, object?>? arguments = null;
        Exception? error = null;
        try
        {
            arguments = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, object?>>(call.Arguments, AIJsonUtilities.DefaultOptions);
        }
        catch (System.Text.Json.JsonException e)
        {
            // Cut short (max tokens): the invoker reports the error to the model instead of calling.
            error = e;
        }

        return new FunctionCallContent(call.Id, call.Name, arguments) { Exception = error, RawRepresentation = call };
    }

    /// <summary>Microsoft.Extensions.AI spells finish reasons as OpenAI does, which is the engine's own spelling.</summary>
    private static ChatFinishReason ToFinishReason(FinishReason reason) => new(reason.ToName());

    /// <summary>The usage; <see cref="UsageDetails.ReasoningTokenCount"/> only when some output tokens were reasoning.</summary>
    private static UsageDetails ToUsage(GenerationUsage usage) => new()
    {
        InputTokenCount = usage.PromptTokens,
        OutputTokenCount = usage.CompletionTokens,
        TotalTokenCount = usage.TotalTokens,
        CachedInputTokenCount = usage.CachedPromptTokens,
        ReasoningTokenCount = usage.ReasoningTokens > 0 ? usage.ReasoningTokens : null,
    };
}
